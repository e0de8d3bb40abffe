// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IBountyTree} from "../interfaces/IBountyTree.sol";

/// @title Payouts
/// @notice The payout rule of a finished task, computed without writing anything: the path from
///         the winner up to its architecture (at most MAX_DEPTH nodes, never the whole tree),
///         what each node on it earns, and what a node off the path claims later.
///
///         - Data share (pool × dataShareBps): split by raises. A trained node that set a new
///           task best holds a raise (its accuracy less the task's best before it, recorded at
///           scoring); each raise earns raise / raisedBps of the share (raisedBps: all of the
///           task's raises), paid to its data's provider: the author for private data, the
///           publisher of a published dataset. A node is paid for what it added to the task
///           when it was scored, not for what its path lacked: a copy in any disguise (hidden
///           units permuted, embedded in a wider layer, hung under another architecture) that
///           sets a new best earns its own raise over what it copied, and what it copied keeps
///           its raise, paid at finalize on the winning path, or by {BountyTree-claim} off it.
///         - Expertise share (pool × expertiseShareBps): split by the same raises, to the
///           architect of each raise's architecture (all of it to the winner's architect when
///           nothing trained set a new best).
///         - Compute share (pool × computeShareBps): split by the same raises, each raise's part
///           among the replayed training on its path (the new best and its ancestors; only the
///           oracle's replays of training on published data have operations), by operations, as
///           compute weights recorded at scoring (Node.computeWeight). So compute is paid for the
///           training new bests grew from, on the winning path or off it, never more than their
///           raises' part: a long chain of heavy training under a one-point raise earns that
///           point's part, and a copy that wins on a path of its own takes nothing from the compute
///           of what it copied. A raise with no replayed training on its path leaves its part to
///           the refund.
///         - The reputation levy: LEVY_BPS of every credit to an account other than the sponsor
///           is burned, and the account earns a point per POINT_PRICE of its levies in the
///           payout (rounded down). Reputation is proof of burn: every point cost its holder at
///           least POINT_PRICE that nobody can get back, whoever controls the accounts paid (the
///           sponsor's own credits, which it would pay itself, neither pay the levy nor earn).
///         Floor division everywhere; what is neither paid nor kept for claims stays with the
///         caller to refund.
/// @dev BountyTree credits the result at finalize and at each claim.
library Payouts {
    /// @notice One credit of a payout.
    struct Credit {
        address account;
        uint256 amount;
        IBountyTree.PayoutKind kind;
    }

    /// @notice What a winning path (or one node off it) is paid.
    /// @param credits Every non-zero credit, winner's end of the path first, expertise last, each
    ///        net of its levy.
    /// @param accounts The distinct accounts paid, in the order first paid.
    /// @param levies What each of `accounts` paid in levies (its points: levies / POINT_PRICE).
    /// @param paid The sum of every credit and every levy (at most the pool).
    /// @param levy The levies, to be burned.
    /// @param sponsor The task's sponsor, whose credits pay no levy.
    /// @param raiseReserve The data and expertise shares' parts of the raises off the path, kept
    ///        for their claims.
    /// @param unclaimedRaise Those raises, in basis points.
    /// @param computeReserve The compute share's part of the compute weights off the path.
    /// @param unclaimedWeight Those weights.
    struct PathPayout {
        Credit[] credits;
        uint256 creditCount;
        address[] accounts;
        uint256[] levies;
        uint256 accountCount;
        uint256 paid;
        uint256 levy;
        address sponsor;
        uint256 raiseReserve;
        uint256 unclaimedRaise;
        uint256 computeReserve;
        uint256 unclaimedWeight;
    }

    /// @dev The pools and what they are split by.
    struct Shares {
        uint256 dataPool;
        uint256 computePool;
        uint256 expertisePool;
        uint256 totalRaise;
        uint256 totalWeight; // the compute share's denominator: totalRaise × WEIGHT_PER_BPS
    }

    uint256 private constant BPS = 10_000;
    /// @notice The share of each credit (the sponsor's aside) burned as the reputation levy.
    uint256 internal constant LEVY_BPS = 100;
    /// @notice Wei of levy burned per reputation point: what a point costs, irrecoverably. A
    ///         microether, so that what a task's levies leave over a whole point is negligible
    ///         (an account paid 0.099 ETH earns 990 points, not none).
    uint256 internal constant POINT_PRICE = 1e12;
    /// @notice Compute weight per basis point of raise (weights of a task sum to at most 1e16).
    uint256 internal constant WEIGHT_PER_BPS = 1e12;

    /// @notice The payout of the path ending at `winner` out of `pool`, by the task's shares.
    /// @param maxDepth The contract's MAX_DEPTH: no path is longer.
    function ofPath(
        mapping(uint256 => IBountyTree.Node) storage nodes,
        mapping(uint256 => IBountyTree.Dataset) storage datasets,
        IBountyTree.Task storage task,
        uint256 winner,
        uint256 pool,
        uint256 maxDepth
    ) external view returns (PathPayout memory p) {
        (uint256[] memory path, uint256 len) = walk(nodes, winner, maxDepth);
        // at most two credits (data, compute) per trained node, and the expertise
        _allocate(p, 2 * len - 1, task.sponsor);

        // path[len - 1] is the architecture; path[0 .. len - 2] are trained nodes.
        Shares memory shares = Shares({
            dataPool: pool * task.dataShareBps / BPS,
            computePool: pool * task.computeShareBps / BPS,
            expertisePool: pool * task.expertiseShareBps / BPS,
            totalRaise: task.raisedBps,
            totalWeight: uint256(task.raisedBps) * WEIGHT_PER_BPS
        });
        uint256 pathRaise;
        uint256 pathWeight;
        for (uint256 i = 0; i + 1 < len; ++i) {
            IBountyTree.Node storage n = nodes[path[i]];
            pathRaise += n.raiseBps;
            pathWeight += n.computeWeight;
        }
        for (uint256 i = 0; i + 1 < len; ++i) {
            _payTrainedNode(p, shares, nodes[path[i]], datasets);
        }
        uint256 expertise = shares.expertisePool;
        if (shares.totalRaise != 0) {
            expertise = shares.expertisePool * pathRaise / shares.totalRaise;
            p.unclaimedRaise = shares.totalRaise - pathRaise;
            p.raiseReserve = (shares.dataPool + shares.expertisePool) * p.unclaimedRaise / shares.totalRaise;
        }
        if (task.computeWeight != 0) {
            p.unclaimedWeight = task.computeWeight - pathWeight;
            p.computeReserve = shares.computePool * p.unclaimedWeight / shares.totalWeight;
        }
        _add(p, nodes[path[len - 1]].author, expertise, IBountyTree.PayoutKind.Expertise);
    }

    /// @notice What `nodeId`, a node off the winning path, is paid out of `raiseAmount` (its
    ///         raise's part of the raise reserve: the data part to its data's provider, the
    ///         expertise part to its architect, in the proportion of the task's two shares) and
    ///         `computeAmount` (its compute weight's part of the compute reserve, to its author).
    function ofClaim(
        mapping(uint256 => IBountyTree.Node) storage nodes,
        mapping(uint256 => IBountyTree.Dataset) storage datasets,
        IBountyTree.Task storage task,
        uint256 nodeId,
        uint256 raiseAmount,
        uint256 computeAmount
    ) external view returns (PathPayout memory p) {
        _allocate(p, 3, task.sponsor);
        IBountyTree.Node storage n = nodes[nodeId];
        // raiseAmount != 0 only if the reserve is, which needs one of the two shares
        uint256 data = raiseAmount == 0
            ? 0
            : raiseAmount * task.dataShareBps / (uint256(task.dataShareBps) + task.expertiseShareBps);
        _add(p, _provider(n, datasets), data, IBountyTree.PayoutKind.Data);
        _add(p, n.author, computeAmount, IBountyTree.PayoutKind.Compute);
        uint256 id = nodeId;
        while (nodes[id].parentId != 0) id = nodes[id].parentId; // at most MAX_DEPTH steps
        _add(p, nodes[id].author, raiseAmount - data, IBountyTree.PayoutKind.Expertise);
    }

    /// @notice Whether `nodeId` is `winner` or one of its ancestors.
    function onPath(mapping(uint256 => IBountyTree.Node) storage nodes, uint256 winner, uint256 nodeId)
        internal
        view
        returns (bool)
    {
        uint256 depth = nodes[nodeId].depth;
        uint256 id = winner;
        while (nodes[id].depth > depth) id = nodes[id].parentId; // at most MAX_DEPTH steps
        return id == nodeId;
    }

    /// @notice The winner's ancestry, winner first, the architecture last.
    function walk(mapping(uint256 => IBountyTree.Node) storage nodes, uint256 winner, uint256 maxDepth)
        internal
        view
        returns (uint256[] memory path, uint256 len)
    {
        path = new uint256[](maxDepth);
        for (uint256 id = winner; id != 0; id = nodes[id].parentId) {
            path[len++] = id;
        }
    }

    /// @dev A trained node's data credit (by its raise, to its data's provider) and compute
    ///      credit (by its compute weight, to its author).
    function _payTrainedNode(
        PathPayout memory p,
        Shares memory shares,
        IBountyTree.Node storage n,
        mapping(uint256 => IBountyTree.Dataset) storage datasets
    ) private view {
        uint256 raise = n.raiseBps;
        if (raise != 0) {
            _add(p, _provider(n, datasets), shares.dataPool * raise / shares.totalRaise, IBountyTree.PayoutKind.Data);
        }
        uint256 weight = n.computeWeight;
        if (weight != 0) {
            _add(p, n.author, shares.computePool * weight / shares.totalWeight, IBountyTree.PayoutKind.Compute);
        }
    }

    /// @dev Who a node's data share goes to: its author for private data, else the publisher.
    function _provider(IBountyTree.Node storage n, mapping(uint256 => IBountyTree.Dataset) storage datasets)
        private
        view
        returns (address)
    {
        return n.datasetId == 0 ? n.author : datasets[n.datasetId].publisher;
    }

    /// @dev Room for at most `credits` credits (and as many accounts).
    function _allocate(PathPayout memory p, uint256 credits, address sponsor) private pure {
        p.credits = new Credit[](credits);
        p.accounts = new address[](credits);
        p.levies = new uint256[](credits);
        p.sponsor = sponsor;
    }

    /// @dev Appends a non-zero credit, net of its levy (none for the sponsor), and adds the levy
    ///      to its account's.
    function _add(PathPayout memory p, address account, uint256 amount, IBountyTree.PayoutKind kind) private pure {
        if (amount == 0) return;
        uint256 levy = account == p.sponsor ? 0 : amount * LEVY_BPS / BPS;
        p.credits[p.creditCount++] = Credit(account, amount - levy, kind);
        p.paid += amount;
        p.levy += levy;
        uint256 i;
        while (i < p.accountCount && p.accounts[i] != account) ++i;
        if (i == p.accountCount) p.accounts[p.accountCount++] = account;
        p.levies[i] += levy;
    }
}
