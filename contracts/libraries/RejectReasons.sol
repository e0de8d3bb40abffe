// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title RejectReasons
/// @notice The reject reason codes the contracts act on themselves, in one place (the full list
///         is documented on {IBountyTree}; the client's is bountytree/reasons.py). A node
///         rejected as PARENT_REJECTED or UNCONFIRMED was never judged at fault by everyone who
///         could judge it, so {IBountyTree-rejectNodes} returns its stake and takes no
///         reputation.
library RejectReasons {
    /// @notice The node's files never came.
    uint8 internal constant MISSING = 1;
    /// @notice A file over what a reader takes.
    uint8 internal constant TOO_LARGE = 5;
    /// @notice Its parent was rejected after it was revealed.
    uint8 internal constant PARENT_REJECTED = 7;
    /// @notice A file that does not open as what it should be.
    uint8 internal constant CORRUPT = 8;
    /// @notice One custodian found a fault it sees alone (seenAlone), the other found none: a
    ///         fault nobody else can check.
    uint8 internal constant UNCONFIRMED = 15;
    /// @notice A private node one custodian could not train or score within its session budget,
    ///         twice, the dealer not to blame: nobody else can check it.
    uint8 internal constant TOO_SLOW = 16;

    /// @notice Whether a node rejected for `reason` keeps its stake and its author's reputation:
    ///         it was never judged at fault by everyone who could judge it.
    function returnsStake(uint256 reason) internal pure returns (bool) {
        return reason == PARENT_REJECTED || reason == UNCONFIRMED || reason == TOO_SLOW;
    }

    /// @notice Whether `reason` may be a fault one custodian sees alone: of a trained node, in
    ///         its own share of the node's rows (missing, too large, corrupt), which only it
    ///         reads; of any node, a file missing (one custodian's store may not get in time what
    ///         the other's did). Every other reason is about files both custodians read alike.
    function seenAlone(uint256 reason, bool architecture) internal pure returns (bool) {
        return reason == MISSING || (!architecture && (reason == TOO_LARGE || reason == CORRUPT));
    }

    /// @notice What two custodians' rejections of one node record, `first` attested first: the
    ///         first's reason, except a PARENT_REJECTED second (its parent is rejected on-chain:
    ///         checked at attestation), and an UNCONFIRMED beside a fault one custodian sees
    ///         alone, in either order, which records UNCONFIRMED (the stake comes back: a
    ///         custodian that rejects honest nodes cannot forfeit them, whichever of the two
    ///         speaks first). An UNCONFIRMED beside a reason both custodians can check records
    ///         that reason: a custodian cannot hand a faulty node its stake back by following it.
    ///         A TOO_SLOW beside anything records TOO_SLOW: an honest custodian says it first,
    ///         having found none of the faults both can check, so a reason said beside it may be
    ///         a deviation that would forfeit an honest stake (attacker review: UNCONFIRMED said
    ///         first let the other name a fault both could check); the price is that a deviating
    ///         custodian can hand a faulty node its stake back so.
    function agreed(uint256 first, uint256 second, bool architecture) internal pure returns (uint256) {
        if (second == PARENT_REJECTED) return second;
        if (first == TOO_SLOW || second == TOO_SLOW) return TOO_SLOW;
        if (first == UNCONFIRMED || second == UNCONFIRMED) {
            uint256 other = first == UNCONFIRMED ? second : first;
            return seenAlone(other, architecture) || other == UNCONFIRMED ? UNCONFIRMED : other;
        }
        return first;
    }
}
