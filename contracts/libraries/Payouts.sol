// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IBountyTree} from "../interfaces/IBountyTree.sol";

/// @title Payouts
/// @notice The payout rule of a finished task, computed without writing anything: the path from
///         the winner up to its architecture (at most MAX_DEPTH nodes, never the whole tree),
///         and what each node on it earns.
///
///         - Data share (pool × dataShareBps): split in proportion to each trained node's gain,
///           its accuracy minus the best accuracy already reached above it on the path (the
///           architecture's included), or 0, paid to its data's provider: the author for private
///           data, the publisher of a published dataset. A dip followed by a recovery gains
///           nothing: only new ground counts.
///         - Compute share (pool × computeShareBps): split in proportion to each trained node's
///           verifiedOps (only the oracle's replays of training on published data have any).
///         - Expertise share (pool × expertiseShareBps): to the architect.
///         - The reputation levy: LEVY_BPS of every credit to an account other than the sponsor
///           is burned, and the account earns a point per POINT_PRICE of its levies in the task
///           (rounded down). Reputation is proof of burn: every point cost its holder at least
///           POINT_PRICE that nobody can get back, whoever controls the accounts paid (the
///           sponsor's own credits, which it would pay itself, neither pay the levy nor earn).
///         Floor division everywhere; what is not paid stays with the caller to refund.
/// @dev BountyTree credits the result at finalize.
library Payouts {
    /// @notice One credit of a path's payout.
    struct Credit {
        address account;
        uint256 amount;
        IBountyTree.PayoutKind kind;
    }

    /// @notice What a winning path is paid.
    /// @param credits Every non-zero credit, winner's end of the path first, expertise last, each
    ///        net of its levy.
    /// @param accounts The distinct accounts paid, in the order first paid.
    /// @param levies What each of `accounts` paid in levies (its points: levies / POINT_PRICE).
    /// @param paid The sum of every credit and every levy (at most the pool).
    /// @param levy The levies, to be burned.
    /// @param sponsor The task's sponsor, whose credits pay no levy.
    struct PathPayout {
        Credit[] credits;
        uint256 creditCount;
        address[] accounts;
        uint256[] levies;
        uint256 accountCount;
        uint256 paid;
        uint256 levy;
        address sponsor;
    }

    /// @dev The data and compute pools and what they are split by.
    struct Shares {
        uint256 dataPool;
        uint256 computePool;
        uint256 totalGain;
        uint256 totalOps;
    }

    uint256 private constant BPS = 10_000;
    /// @notice The share of each path credit (the sponsor's aside) burned as the reputation levy.
    uint256 internal constant LEVY_BPS = 100;
    /// @notice Wei of levy burned per reputation point: what a point costs, irrecoverably. A
    ///         microether, so that what a task's levies leave over a whole point is negligible
    ///         (an account paid 0.099 ETH earns 990 points, not none).
    uint256 internal constant POINT_PRICE = 1e12;

    /// @notice The payout of the path ending at `winner` out of `pool`, by the task's shares.
    /// @param maxDepth The contract's MAX_DEPTH: no path is longer.
    function ofPath(
        mapping(uint256 => IBountyTree.Node) storage nodes,
        mapping(uint256 => IBountyTree.Dataset) storage datasets,
        IBountyTree.Task storage task,
        uint256 winner,
        uint256 pool,
        uint256 maxDepth
    ) internal view returns (PathPayout memory p) {
        (uint256[] memory path, uint256[] memory gains, uint256 len) = walk(nodes, winner, maxDepth);
        // at most two credits (data, compute) per trained node, and the expertise
        p.credits = new Credit[](2 * len - 1);
        p.accounts = new address[](2 * len - 1);
        p.levies = new uint256[](2 * len - 1);
        p.sponsor = task.sponsor;

        // path[len - 1] is the architecture; path[0 .. len - 2] are trained nodes.
        Shares memory shares = Shares({
            dataPool: pool * task.dataShareBps / BPS,
            computePool: pool * task.computeShareBps / BPS,
            totalGain: 0,
            totalOps: 0
        });
        for (uint256 i = 0; i + 1 < len; ++i) {
            shares.totalGain += gains[i];
            shares.totalOps += nodes[path[i]].verifiedOps;
        }
        for (uint256 i = 0; i + 1 < len; ++i) {
            _payTrainedNode(p, shares, nodes[path[i]], gains[i], datasets);
        }
        _add(p, nodes[path[len - 1]].author, pool * task.expertiseShareBps / BPS, IBountyTree.PayoutKind.Expertise);
    }

    /// @notice The winner's ancestry, winner first, with each node's gain over the best accuracy
    ///         on the path above it (0 for the architecture, and for any node that only wins
    ///         back what an ancestor already had).
    function walk(mapping(uint256 => IBountyTree.Node) storage nodes, uint256 winner, uint256 maxDepth)
        internal
        view
        returns (uint256[] memory path, uint256[] memory gains, uint256 len)
    {
        path = new uint256[](maxDepth);
        gains = new uint256[](maxDepth);
        uint256[] memory accs = new uint256[](maxDepth);
        for (uint256 id = winner; id != 0; id = nodes[id].parentId) {
            accs[len] = nodes[id].accuracyBps;
            path[len++] = id;
        }
        uint256 best = accs[len - 1];
        for (uint256 i = len - 1; i > 0; --i) {
            uint256 acc = accs[i - 1];
            if (acc > best) {
                gains[i - 1] = acc - best;
                best = acc;
            }
        }
    }

    /// @dev A trained node's data credit (by its gain, to its data's provider) and compute credit
    ///      (by its verified operations, to its author).
    function _payTrainedNode(
        PathPayout memory p,
        Shares memory shares,
        IBountyTree.Node storage n,
        uint256 gain,
        mapping(uint256 => IBountyTree.Dataset) storage datasets
    ) private view {
        if (gain != 0) {
            address provider = n.datasetId == 0 ? n.author : datasets[n.datasetId].publisher;
            _add(p, provider, shares.dataPool * gain / shares.totalGain, IBountyTree.PayoutKind.Data);
        }
        uint256 ops = n.verifiedOps;
        if (ops != 0) {
            _add(p, n.author, shares.computePool * ops / shares.totalOps, IBountyTree.PayoutKind.Compute);
        }
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
