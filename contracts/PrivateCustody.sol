// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IBountyTree} from "./interfaces/IBountyTree.sol";
import {IPrivateCustody} from "./interfaces/IPrivateCustody.sol";
import {RejectReasons} from "./libraries/RejectReasons.sol";

/// @title PrivateCustody
/// @notice The custody of private tasks ({IPrivateCustody} documents every type, event, error and
///         function).
/// @dev Kept apart from BountyTree, which it only reads: a public task pays nothing for it, and
///      BountyTree's escrow and code stay as they are. Every loop is over three parties.
contract PrivateCustody is IPrivateCustody, ReentrancyGuard {
    uint256 private constant PARTIES = 3;
    uint256 private constant MIN_WINDOW = 1 hours;
    uint256 private constant MAX_WINDOW = 30 days;
    uint256 private constant BPS = 10_000;

    IBountyTree public immutable tree;
    address public immutable admin;

    // slot 0 is ReentrancyGuard's namespaced flag (ERC-7201): these start at slot 0.
    mapping(uint256 taskId => Custody) private _custody;
    /// @dev keyed by nodeId * 2 + index
    mapping(uint256 key => bytes32) private _commitments;
    mapping(address account => uint256) public pendingWithdrawals;
    /// @dev keyed by nodeId * 2 + index: 1 + (kind << 16 | value), 0 = none
    mapping(uint256 key => uint32) private _attestations;
    /// @dev the sponsor's validation rows, two sealed shares (CID digests)
    mapping(uint256 taskId => bytes32[2]) private _validation;
    mapping(address account => bool) private _approved;
    /// @dev per task, each custodian's agreement to finalize leaving the pending nodes:
    ///      1 + (submissions << 128 | pendingSeen), 0 = none
    mapping(uint256 taskId => uint256[2]) private _leaving;
    /// @dev bit i set: custodian i's last word is that it cannot read its validation share
    mapping(uint256 taskId => uint8) public validationUnread;
    /// @dev bit i set: custodian i's last word is that the node waits for the dealer
    mapping(uint256 nodeId => uint8) public dealerWaitOf;
    /// @dev pending nodes of the task with both bits set
    mapping(uint256 taskId => uint256) public dealerWaiting;

    constructor(IBountyTree tree_) {
        tree = tree_;
        admin = msg.sender;
    }

    /// @inheritdoc IPrivateCustody
    function approve(address account, bool approved) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _approved[account] = approved;
        emit Approved(account, approved);
    }

    /// @inheritdoc IPrivateCustody
    function isApproved(address account) external view returns (bool) {
        return _approved[account];
    }

    /// @inheritdoc IPrivateCustody
    function noteFinalized(uint256 taskId) external {
        Custody storage c = _registered(taskId);
        if (!_note(taskId, c, tree.getTask(taskId))) revert NotFinalized(taskId);
    }

    /// @inheritdoc IPrivateCustody
    function register(
        uint256 taskId,
        address custodian0,
        address custodian1,
        address dealer,
        bytes32 sponsorKey,
        uint256 stake,
        uint256 handoverWindow
    ) external payable {
        IBountyTree.Task memory t = tree.getTask(taskId);
        if (t.sponsor == address(0)) revert UnknownTask(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(msg.sender);
        _requireOpen(taskId, t);
        if (t.privacy == IBountyTree.Privacy.Public) revert NotPrivate(taskId);
        Custody storage c = _custody[taskId];
        if (c.custodian0 != address(0)) revert AlreadyRegistered(taskId);
        if (
            custodian0 == address(0) || custodian1 == address(0) || dealer == address(0)
                || custodian0 == custodian1 || custodian0 == dealer || custodian1 == dealer
                || custodian0 == msg.sender || custodian1 == msg.sender || dealer == msg.sender
        ) revert PartiesNotDistinct();
        if (!_approved[custodian0]) revert NotApproved(custodian0);
        if (!_approved[custodian1]) revert NotApproved(custodian1);
        if (!_approved[dealer]) revert NotApproved(dealer);
        if (sponsorKey == bytes32(0)) revert ZeroKey();
        if (stake > type(uint96).max) revert AmountTooLarge(stake);
        if (msg.value > type(uint96).max) revert AmountTooLarge(msg.value);
        if (handoverWindow < MIN_WINDOW || handoverWindow > MAX_WINDOW) revert WindowOutOfRange(handoverWindow);
        c.custodian0 = custodian0;
        c.custodian1 = custodian1;
        c.dealer = dealer;
        c.stake = uint96(stake);
        c.fee = uint96(msg.value);
        c.handoverWindow = uint32(handoverWindow);
        c.sponsorKey = sponsorKey;
        emit CustodyRegistered(taskId, custodian0, custodian1, dealer, sponsorKey, stake, msg.value, handoverWindow);
    }

    /// @inheritdoc IPrivateCustody
    function accept(uint256 taskId, bytes32 terms, bytes32 sealingKey) external payable {
        Custody storage c = _registered(taskId);
        if (c.settled) revert AlreadySettled(taskId);
        bytes32 registered = _terms(taskId, c);
        if (terms != registered) revert TermsChanged(registered, terms);
        uint8 party = _party(c, msg.sender);
        if (c.accepted & (1 << party) != 0) revert AlreadyAccepted(msg.sender);
        if (msg.value != c.stake) revert WrongStake(msg.value, c.stake);
        // only while the task can still take work: a party that accepted after the deadline
        // made a custody that never held anything "served", and took its third of the fee
        // (found by the attacker review of private-from-creation)
        _requireOpen(taskId, tree.getTask(taskId));
        if (sealingKey == bytes32(0)) revert ZeroKey();
        c.accepted |= uint8(1 << party);
        if (party == 0) c.key0 = sealingKey;
        else if (party == 1) c.key1 = sealingKey;
        else c.key2 = sealingKey;
        emit CustodyAccepted(taskId, msg.sender, party, sealingKey);
    }

    /// @inheritdoc IPrivateCustody
    function commitShare(uint256 nodeId, bytes32 commitment) external {
        (IBountyTree.Node memory n, uint8 index) = _nodeOfMyTask(nodeId);
        if (commitment == bytes32(0)) revert EmptyCommitment();
        uint256 key = nodeId * 2 + index;
        if (_commitments[key] != bytes32(0)) revert AlreadyCommitted(nodeId, index);
        _commitments[key] = commitment;
        emit ShareCommitted(n.taskId, nodeId, index, commitment);
    }

    /// @inheritdoc IPrivateCustody
    function handOver(uint256 taskId, bytes32 sealedCid) external nonReentrant {
        Custody storage c = _registered(taskId);
        if (c.settled) revert AlreadySettled(taskId);
        uint8 index = _custodianIndex(c, msg.sender);
        IBountyTree.Task memory t = tree.getTask(taskId);
        if (!_note(taskId, c, t)) revert NotFinalized(taskId);
        if (t.winnerNodeId == 0) revert NoWinner(taskId);
        uint256 deadline = _deadline(c);
        if (block.timestamp > deadline) revert HandoverClosed(deadline);
        if (_commitments[uint256(t.winnerNodeId) * 2 + index] == bytes32(0)) {
            revert NoCommitment(t.winnerNodeId, index);
        }
        if (c.delivered & (1 << index) != 0) revert AlreadyHandedOver(index);
        if (sealedCid == bytes32(0)) revert EmptyCommitment();
        c.delivered |= uint8(1 << index);
        if (index == 0) c.sealed0 = sealedCid;
        else c.sealed1 = sealedCid;
        emit HandedOver(taskId, t.winnerNodeId, index, sealedCid);
        if (c.delivered == 3) _settle(taskId, c, t);
    }

    /// @inheritdoc IPrivateCustody
    function settle(uint256 taskId) external nonReentrant {
        Custody storage c = _registered(taskId);
        if (c.settled) revert AlreadySettled(taskId);
        IBountyTree.Task memory t = tree.getTask(taskId);
        if (c.accepted == 7) {
            if (!t.finalized) revert NotFinalized(taskId);
            // the window runs from the moment finalization is noted: settling cannot close it
            if (c.finalizedAt == 0 && t.winnerNodeId != 0) revert HandoverOpen(0);
            uint256 deadline = _deadline(c);
            if (t.winnerNodeId != 0 && block.timestamp <= deadline) revert HandoverOpen(deadline);
            if (t.winnerNodeId == 0) c.delivered = 3; // nothing to hand over: custody was served
        } else if (!t.finalized && block.timestamp < t.deadline) {
            // custody has not started yet, and the parties still have until the deadline
            revert CustodyNotReady(taskId);
        }
        _settle(taskId, c, t);
    }

    /// @inheritdoc IPrivateCustody
    function termsOf(uint256 taskId) external view returns (bytes32) {
        return _terms(taskId, _registered(taskId));
    }

    /// @inheritdoc IPrivateCustody
    function withdrawCustody(uint256 taskId) external nonReentrant {
        Custody storage c = _registered(taskId);
        IBountyTree.Task memory t = tree.getTask(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(msg.sender);
        if (c.settled) revert AlreadySettled(taskId);
        if (c.accepted == 7) revert CustodyReady(taskId);
        _settle(taskId, c, t); // the fee back, each stake to its party
        delete _custody[taskId];
        emit CustodyWithdrawn(taskId);
    }

    /// @inheritdoc IPrivateCustody
    function shareValidation(uint256 taskId, bytes32 share0, bytes32 share1) external {
        Custody storage c = _registered(taskId);
        IBountyTree.Task memory t = tree.getTask(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(msg.sender);
        if (c.accepted != 7) revert CustodyNotReady(taskId);
        if (share0 == bytes32(0) || share1 == bytes32(0)) revert EmptyCommitment();
        if (_validation[taskId][0] != bytes32(0)) revert AlreadyShared(taskId);
        _validation[taskId] = [share0, share1];
        emit ValidationShared(taskId, share0, share1);
        // Only now does the task take work: its three parties staked and its rows are with the
        // custodians, so a node never waits on a sponsor that did not share them (its bond is
        // not burned for what the custodians leave) and no fee waits on a custody never ready.
        tree.markCustodied(taskId);
    }

    /// @inheritdoc IPrivateCustody
    function reportValidation(uint256 taskId, bool readable) external {
        (, uint8 index) = _readyCustodian(taskId);
        if (_validation[taskId][0] == bytes32(0)) revert NotShared(taskId);
        uint8 unread = _word(validationUnread[taskId], index, !readable);
        validationUnread[taskId] = unread;
        emit ValidationReported(taskId, index, readable);
        tree.markValidationUnread(taskId, unread != 0); // reverts once the task is finalized
    }

    /// @inheritdoc IPrivateCustody
    function reportDealer(uint256 nodeId, bool waits) external {
        (IBountyTree.Node memory n, uint8 index) = _nodeOfMyTask(nodeId);
        if (n.status != IBountyTree.NodeStatus.Pending) revert NodeNotPending(nodeId);
        if (tree.getTask(n.taskId).finalized) revert TaskClosed(n.taskId);
        uint8 before = dealerWaitOf[nodeId];
        uint8 word = _word(before, index, waits);
        dealerWaitOf[nodeId] = word;
        if (word == 3 && before != 3) ++dealerWaiting[n.taskId];
        else if (before == 3 && word != 3) --dealerWaiting[n.taskId];
        emit DealerReported(n.taskId, nodeId, index, waits);
    }

    /// @inheritdoc IPrivateCustody
    function attest(uint256 nodeId, uint8 kind, uint16 value) external nonReentrant {
        (IBountyTree.Node memory n, uint8 index) = _nodeOfMyTask(nodeId);
        if (n.status != IBountyTree.NodeStatus.Pending) revert NodeNotPending(nodeId);
        if (kind > 1 || (kind == 0 && value > BPS) || (kind == 1 && (value == 0 || value > 255))) {
            revert BadAttestation(kind, value);
        }
        // a rejection that returns the stake for the parent's sake only when the parent fell
        if (
            kind == 1 && value == RejectReasons.PARENT_REJECTED
                && (n.parentId == 0 || tree.getNode(n.parentId).status != IBountyTree.NodeStatus.Rejected)
        ) revert BadAttestation(kind, value);
        // too slow for the budget: a training, of a trained node neither custodian committed to
        // a share of (a training that ended), or a scoring, of a node both committed to (nothing
        // is found at fault once both have; its stake comes back when it is scored). Said of a
        // node one custodian committed to, or of an architecture before its commitments, it
        // would hand a faulty node its stake back (RejectReasons.agreed).
        if (kind == 1 && value == RejectReasons.TOO_SLOW) {
            bool zero = _commitments[nodeId * 2] != 0;
            bool one = _commitments[nodeId * 2 + 1] != 0;
            if (zero != one || (!zero && n.parentId == 0)) revert BadAttestation(kind, value);
        }
        uint256 key = nodeId * 2 + index;
        if (_attestations[key] != 0) revert AlreadyAttested(nodeId, index);
        uint32 mine = 1 + (uint32(kind) << 16 | value);
        emit Attested(n.taskId, nodeId, index, kind, value);
        uint256 otherKey = nodeId * 2 + (1 - index);
        uint32 theirs = _attestations[otherKey];
        if (theirs == 0) {
            _attestations[key] = mine;
            return;
        }
        // Two rejections agree whatever their reasons (each custodian judges its own share of
        // the node's files: one may find them corrupt where the other finds them missing); the
        // reason recorded is RejectReasons.agreed's.
        bool bothReject = kind == 1 && (theirs - 1) >> 16 == 1;
        if (theirs != mine && !bothReject) {
            delete _attestations[otherKey];
            emit AttestationsDiffer(n.taskId, nodeId, theirs, mine);
            return;
        }
        _attestations[key] = mine;
        if (dealerWaitOf[nodeId] == 3) --dealerWaiting[n.taskId]; // recorded: it waits no more
        delete dealerWaitOf[nodeId];
        if (bothReject) value = uint16(RejectReasons.agreed((theirs - 1) & 0xFFFF, value, n.parentId == 0));
        if (kind == 0) {
            IBountyTree.Score[] memory scores = new IBountyTree.Score[](1);
            scores[0] = IBountyTree.Score(nodeId, value, 0, n.datasetId);
            tree.recordScores(n.taskId, scores);
        } else {
            uint256[] memory ids = new uint256[](1);
            uint8[] memory reasons = new uint8[](1);
            ids[0] = nodeId;
            reasons[0] = uint8(value);
            tree.rejectNodes(n.taskId, ids, reasons);
        }
    }

    /// @inheritdoc IPrivateCustody
    function finalizeLeaving(uint256 taskId, uint256 pendingSeen, uint256 submissionsSeen) external nonReentrant {
        (Custody storage c, uint8 index) = _readyCustodian(taskId);
        IBountyTree.Task memory t = tree.getTask(taskId);
        if (t.submissions != submissionsSeen) revert SubmissionsChanged(taskId, t.submissions, submissionsSeen);
        emit LeavingAgreed(taskId, index, pendingSeen, submissionsSeen);
        uint256 mine = 1 + (uint256(t.submissions) << 128 | uint128(pendingSeen));
        if (_leaving[taskId][1 - index] != mine) {
            _leaving[taskId][index] = mine;
            return;
        }
        delete _leaving[taskId];
        tree.finalizeLeaving(taskId, pendingSeen); // due, and exactly this count pending
        _note(taskId, c, tree.getTask(taskId));
    }

    /// @inheritdoc IPrivateCustody
    function attestationOf(uint256 nodeId, uint8 index) external view returns (uint32) {
        return index < 2 ? _attestations[nodeId * 2 + index] : 0;
    }

    /// @inheritdoc IPrivateCustody
    function validationShares(uint256 taskId) external view returns (bytes32 share0, bytes32 share1) {
        return (_validation[taskId][0], _validation[taskId][1]);
    }

    /// @inheritdoc IPrivateCustody
    function withdraw() external nonReentrant {
        uint256 amount = pendingWithdrawals[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        pendingWithdrawals[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
        emit Withdrawn(msg.sender, amount);
    }

    /// @inheritdoc IPrivateCustody
    function custodyOf(uint256 taskId) external view returns (Custody memory) {
        return _custody[taskId];
    }

    /// @inheritdoc IPrivateCustody
    function commitmentOf(uint256 nodeId, uint8 index) external view returns (bytes32) {
        return index < 2 ? _commitments[nodeId * 2 + index] : bytes32(0);
    }

    /// @inheritdoc IPrivateCustody
    function handoverDeadline(uint256 taskId) external view returns (uint256) {
        Custody storage c = _custody[taskId];
        if (c.finalizedAt == 0) return 0;
        return _deadline(c);
    }

    // ───────────────────────────── internals ─────────────────────────────

    /// @dev Credits everyone once. Custody served (all three accepted): each party its stake and
    ///      a third of the fee (the dealer takes the rounding), except a custodian that did not
    ///      deliver, whose stake and third go to the sponsor, and a dealer that left a node
    ///      both custodians say waits for it, whose third goes back to the sponsor
    ///      ({reportDealer}). Custody never started: the fee back to the sponsor, each
    ///      stake back to whoever staked it.
    function _settle(uint256 taskId, Custody storage c, IBountyTree.Task memory t) private {
        c.settled = true;
        address[PARTIES] memory parties = [c.custodian0, c.custodian1, c.dealer];
        uint256 stake = c.stake;
        uint256 fee = c.fee;
        if (c.accepted != 7) {
            for (uint256 i = 0; i < PARTIES; ++i) {
                if (c.accepted & (1 << i) != 0) _credit(taskId, parties[i], stake, CreditKind.Stake);
            }
            _credit(taskId, t.sponsor, fee, CreditKind.Refund);
        } else {
            uint256 third = fee / PARTIES;
            for (uint256 i = 0; i < PARTIES; ++i) {
                uint256 share = i == PARTIES - 1 ? fee - 2 * third : third;
                if (i < 2 && c.delivered & (1 << i) == 0) {
                    _credit(taskId, t.sponsor, stake + share, CreditKind.Forfeit);
                } else if (i == 2 && dealerWaiting[taskId] != 0) {
                    _credit(taskId, parties[i], stake, CreditKind.Stake);
                    _credit(taskId, t.sponsor, share, CreditKind.Unserved);
                } else {
                    _credit(taskId, parties[i], stake, CreditKind.Stake);
                    _credit(taskId, parties[i], share, CreditKind.Fee);
                }
            }
        }
        emit CustodySettled(taskId, c.delivered);
    }

    function _terms(uint256 taskId, Custody storage c) private view returns (bytes32) {
        return keccak256(
            abi.encode(
                taskId, c.custodian0, c.custodian1, c.dealer, c.sponsorKey, c.stake, c.fee, c.handoverWindow
            )
        );
    }

    function _credit(uint256 taskId, address account, uint256 amount, CreditKind kind) private {
        if (amount == 0) return;
        pendingWithdrawals[account] += amount;
        emit Credited(taskId, account, amount, uint8(kind));
    }

    /// @dev The task can still take work: not finalized, its deadline not passed.
    function _requireOpen(uint256 taskId, IBountyTree.Task memory t) private view {
        if (t.finalized || block.timestamp >= t.deadline) revert TaskClosed(taskId);
    }

    function _registered(uint256 taskId) private view returns (Custody storage c) {
        c = _custody[taskId];
        if (c.custodian0 == address(0)) revert NotRegistered(taskId);
    }

    function _party(Custody storage c, address account) private view returns (uint8) {
        if (account == c.custodian0) return 0;
        if (account == c.custodian1) return 1;
        if (account == c.dealer) return 2;
        revert NotAParty(account);
    }

    /// @dev The task's custody, ready ({CustodyNotReady}), and the caller's custodian index in it.
    function _readyCustodian(uint256 taskId) private view returns (Custody storage c, uint8 index) {
        c = _registered(taskId);
        if (c.accepted != 7) revert CustodyNotReady(taskId);
        index = _custodianIndex(c, msg.sender);
    }

    /// @dev A node ({NodeNotInTask}) of a task whose custody is ready, and the caller's custodian
    ///      index in it: what every custodian's word on a node checks first.
    function _nodeOfMyTask(uint256 nodeId) private view returns (IBountyTree.Node memory n, uint8 index) {
        n = tree.getNode(nodeId);
        if (n.author == address(0)) revert NodeNotInTask(nodeId);
        (, index) = _readyCustodian(n.taskId);
    }

    function _custodianIndex(Custody storage c, address account) private view returns (uint8) {
        if (account == c.custodian0) return 0;
        if (account == c.custodian1) return 1;
        revert NotCustodian(account);
    }

    function _deadline(Custody storage c) private view returns (uint256) {
        return uint256(c.finalizedAt) + c.handoverWindow;
    }

    /// @dev A custodian's word in a task's two bits: bit `index` set iff `said`.
    function _word(uint8 bits, uint8 index, bool said) private pure returns (uint8) {
        uint8 bit = uint8(1 << index);
        return said ? bits | bit : bits & ~bit;
    }

    /// @dev Records the first moment the task was seen finalized; whether it is finalized.
    function _note(uint256 taskId, Custody storage c, IBountyTree.Task memory t) private returns (bool) {
        if (!t.finalized) return false;
        if (c.finalizedAt == 0) {
            c.finalizedAt = uint40(block.timestamp);
            emit FinalizationNoted(taskId, block.timestamp);
        }
        return true;
    }
}
