// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IBountyTree} from "./interfaces/IBountyTree.sol";
import {IReputation} from "./interfaces/IReputation.sol";
import {Payouts} from "./libraries/Payouts.sol";
import {RejectReasons} from "./libraries/RejectReasons.sol";

/// @title BountyTree
/// @notice The bountytree marketplace; {IBountyTree} documents every type, event, error and
///         function, and lists the reject reason codes.
/// @dev Storage is laid out so that each operation touches as few slots as possible: a
///      submission reads and writes task slot 0 only, scoring writes node slot 2 and task slot 4,
///      and the best node is tracked while scoring so that {finalize} walks one path (at most
///      MAX_DEPTH nodes, {Payouts}) and never the whole tree. Ids are stored as uint32 (4 billion
///      of each is enough for one deployment) and exposed as uint256.
///
///      Escrow, per task: what it was paid (bounty, audit bond, and the stake and scoring fee of
///      every commitment) is exactly what it credits (address(0) for what is
///      burned) once it is finalized, its stakes reclaimed and its bond settled; before that,
///      what it has not credited is its open pool (bounty + forfeited stakes + the fees of
///      nodes and datasets revealed), the stakes it still escrows, the stakes and fees of unrevealed commitments and
///      its bond.
contract BountyTree is IBountyTree, AccessControl, ReentrancyGuard {
    // ───────────────────────────── constants ─────────────────────────────

    /// @inheritdoc IBountyTree
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    /// @inheritdoc IBountyTree
    bytes32 public constant CUSTODY_ROLE = keccak256("CUSTODY_ROLE");
    /// @inheritdoc IBountyTree
    uint256 public constant MAX_DEPTH = 32;
    /// @inheritdoc IBountyTree
    uint256 public constant MAX_BATCH = 64;
    /// @inheritdoc IBountyTree
    uint8 public constant PARENT_REJECTED = RejectReasons.PARENT_REJECTED;
    /// @inheritdoc IBountyTree
    uint8 public constant UNCONFIRMED = RejectReasons.UNCONFIRMED;
    /// @inheritdoc IBountyTree
    uint256 public constant MAX_VIEW = 500;
    /// @inheritdoc IBountyTree
    /// @dev The points the levy on 1 ETH of work paid buys (10,000 × 1e12 wei = 1% of 1 ETH).
    int256 public constant REP_WORSE = -10_000;
    /// @inheritdoc IBountyTree
    /// @dev The points the levy on 2 ETH of work paid buys.
    int256 public constant REP_REJECTED = -20_000;
    /// @inheritdoc IBountyTree
    uint256 public constant REPUTATION_LEVY_BPS = Payouts.LEVY_BPS;
    /// @inheritdoc IBountyTree
    uint256 public constant REPUTATION_POINT_PRICE = Payouts.POINT_PRICE;
    /// @inheritdoc IBountyTree
    uint256 public constant WEIGHT_PER_BPS = Payouts.WEIGHT_PER_BPS;
    /// @inheritdoc IBountyTree
    uint256 public constant FINALIZE_GRACE = 1 days;
    /// @inheritdoc IBountyTree
    /// @dev A week: long enough for a sponsor to upload the file and send one transaction, short
    ///      enough that a sponsor's silence is settled (the bond burned) soon after.
    uint256 public constant AUDIT_WINDOW = 7 days;
    /// @inheritdoc IBountyTree
    /// @dev A client reveals a block or two after its commitment is mined (once its file is
    ///      uploaded); half an hour leaves room for a congested chain and a restarted client
    ///      (`bountytree reveal`), and bounds what one unrevealed commitment can delay a finalize.
    uint256 public constant REVEAL_WINDOW = 30 minutes;
    uint256 private constant BPS = 10_000;
    /// @dev Where burned wei is credited: no account can withdraw from address(0), so
    ///      pendingWithdrawals(address(0)) is everything ever burned.
    address private constant BURNED = address(0);

    /// @dev Task ids and node ids, in one slot (dataset ids are per task: Task.datasets).
    struct Counters {
        uint32 tasks;
        uint32 nodes;
    }

    /// @dev Running state of one {recordScores} call, kept in memory so the task's slot 4 is
    ///      written once per batch.
    struct ScoreBatch {
        uint96 stake;
        uint32 bestId;
        uint16 bestAcc;
        uint16 raised; // the raises of the batch's new bests
        uint64 weighed; // the compute weights its new bests gave
        uint96 forfeited;
        address[] penalised;
        uint256 penalisedCount;
    }

    // ────────────────────────────── storage ──────────────────────────────
    // Slot 0 is AccessControl's role mapping; ReentrancyGuard keeps its flag in a namespaced slot
    // (ERC-7201), so this contract's own variables start at slot 1.

    /// @inheritdoc IBountyTree
    IReputation public immutable reputation;

    /// @dev slot 1
    Counters private _counters;
    /// @dev slot 2; a Task spans six slots (IBountyTree.Task says which field lives where).
    mapping(uint256 taskId => Task) private _tasks;
    /// @dev slot 3; a Node spans three slots.
    mapping(uint256 nodeId => Node) private _nodes;
    /// @dev slot 4; a Dataset spans two slots. Ids count from 1 in each task, so no task's
    ///      publishing can use up another's ids.
    mapping(uint256 taskId => mapping(uint256 datasetId => Dataset)) private _datasets;
    /// @dev slot 5; keyed by keccak256(abi.encode(author, commitment)): each account has its own
    ///      namespace, so nobody can block a commitment by staking the same hash first.
    mapping(bytes32 key => Commitment) private _commitments;
    /// @inheritdoc IBountyTree
    /// @dev slot 6
    mapping(address account => uint256) public pendingWithdrawals;
    /// @inheritdoc IBountyTree
    /// @dev slot 7; written only for tasks with a cap, so uncapped submissions pay nothing for it.
    mapping(uint256 taskId => mapping(address account => uint256)) public submissionsBy;
    /// @inheritdoc IBountyTree
    /// @dev slot 8
    mapping(uint256 taskId => mapping(bytes32 cid => uint256 datasetId)) public datasetIdOf;
    /// @inheritdoc IBountyTree
    /// @dev slot 9; read only for tasks whose `privacy` (slot 4, read anyway) is Custodied
    mapping(uint256 taskId => address custody) public custodyOf;

    /// @param reputation_ The Reputation registry; its deployer must bind this contract as writer.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (grants and revokes oracles).
    /// @param oracle First holder of ORACLE_ROLE.
    constructor(IReputation reputation_, address admin, address oracle) {
        reputation = reputation_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ORACLE_ROLE, oracle);
    }

    // ───────────────────────────── lifecycle ─────────────────────────────

    /// @inheritdoc IBountyTree
    function createTask(
        bytes32 specCid,
        bytes32 validationCommitment,
        uint16 targetAccuracyBps,
        uint64 deadline,
        uint16 dataShareBps,
        uint16 computeShareBps,
        uint16 expertiseShareBps,
        uint256 submissionStake,
        uint256 scoringFee,
        uint16 maxSubmissions,
        uint256 auditBond,
        bool privateModels
    ) external payable returns (uint256 taskId) {
        if (msg.value <= auditBond) revert NoBounty();
        uint256 bounty = msg.value - auditBond;
        if (bounty > type(uint96).max) revert AmountTooLarge(bounty);
        if (auditBond > type(uint80).max) revert AmountTooLarge(auditBond);
        if (submissionStake > type(uint64).max) revert AmountTooLarge(submissionStake);
        if (scoringFee > type(uint64).max) revert AmountTooLarge(scoringFee);
        if (specCid == bytes32(0)) revert EmptyCid();
        if (validationCommitment == bytes32(0)) revert EmptyCommitment();
        if (deadline <= block.timestamp) revert DeadlineNotInFuture(deadline, block.timestamp);
        if (deadline > type(uint32).max) revert DeadlineTooFar(deadline);
        if (targetAccuracyBps == 0 || targetAccuracyBps > BPS) revert TargetOutOfRange(targetAccuracyBps);
        uint256 sum = uint256(dataShareBps) + computeShareBps + expertiseShareBps;
        if (sum != BPS) revert SharesMustSumTo10000(sum);

        taskId = _nextId(0);
        Task storage t = _tasks[taskId];
        t.submissionStake = uint64(submissionStake);
        t.scoringFee = uint64(scoringFee);
        t.deadline = uint32(deadline);
        t.maxSubmissions = maxSubmissions;
        t.sponsor = msg.sender;
        t.bounty = uint96(bounty);
        t.specCid = specCid;
        t.validationCommitment = validationCommitment;
        t.targetAccuracyBps = targetAccuracyBps;
        t.dataShareBps = dataShareBps;
        t.computeShareBps = computeShareBps;
        t.expertiseShareBps = expertiseShareBps;
        if (privateModels) t.privacy = Privacy.AwaitingCustody;
        if (auditBond != 0) {
            t.bondState = BondState.Held;
            t.auditBond = uint80(auditBond);
        }
        _emitTaskCreated(taskId, t, auditBond);
    }

    /// @inheritdoc IBountyTree
    function commitSubmission(uint256 taskId, bytes32 commitment) external payable {
        Task storage t = _openTask(taskId);
        // a private task takes nothing before its custody (slot 4: 2,100 gas more per commitment)
        if (t.privacy == Privacy.AwaitingCustody) revert AwaitingCustody(taskId);
        if (commitment == bytes32(0)) revert EmptyCommitment();
        bytes32 key = _commitmentKey(msg.sender, commitment);
        if (_commitments[key].author != address(0)) revert CommitmentExists(commitment);
        _takeSubmission(taskId, t);
        if (t.openCommitments == type(uint24).max) revert TooManyItems();
        ++t.openCommitments;
        _commitments[key] =
            Commitment({author: msg.sender, taskId: uint32(taskId), blockNumber: uint64(block.number)});
        emit SubmissionCommitted(taskId, msg.sender, commitment);
    }

    /// @inheritdoc IBountyTree
    function revealSubmission(uint256 taskId, uint256 parentId, bytes32 cid, uint256 datasetId, bytes32 salt)
        external
        returns (uint256 nodeId)
    {
        Task storage t =
            _takeCommitment(taskId, keccak256(abi.encode(msg.sender, taskId, parentId, cid, datasetId, salt)));
        if (cid == bytes32(0)) revert EmptyCid();
        uint8 depth = 1;
        if (parentId != 0) {
            Node storage parent = _nodes[parentId];
            if (parent.taskId != taskId) revert ParentNotInTask(parentId, taskId);
            if (parent.depth >= MAX_DEPTH) revert TreeTooDeep(MAX_DEPTH);
            if (parent.status == NodeStatus.Rejected) revert ParentRejected(parentId);
            if (datasetId != 0 && _datasets[taskId][datasetId].publisher == address(0)) {
                revert DatasetNotInTask(datasetId, taskId);
            }
            depth = parent.depth + 1;
        } else if (datasetId != 0) {
            revert DatasetOnArchitecture(datasetId);
        }

        _addNode(t);
        nodeId = _nextId(1);
        Node storage n = _nodes[nodeId];
        n.author = msg.sender;
        n.taskId = uint32(taskId);
        n.parentId = uint32(parentId);
        n.depth = depth;
        n.datasetId = uint24(datasetId);
        n.cid = cid;
        if (parentId == 0) emit ArchitectureProposed(taskId, nodeId, msg.sender, cid);
        else emit NodeSubmitted(taskId, nodeId, parentId, msg.sender, cid, datasetId);
    }

    /// @inheritdoc IBountyTree
    function revealDataset(uint256 taskId, bytes32 dataCid, bytes32 salt) external returns (uint256 datasetId) {
        Task storage t = _takeCommitment(taskId, keccak256(abi.encode(msg.sender, taskId, dataCid, salt)));
        if (dataCid == bytes32(0)) revert EmptyCid();
        uint256 earlier = datasetIdOf[taskId][dataCid];
        if (earlier != 0) revert DatasetExists(taskId, earlier);
        // Its fee joins the pool now (a dataset counts among the task's revealed items, never
        // pending); its stake has nothing to be judged on and returns at once.
        if (t.submissions == type(uint24).max) revert TooManyItems();
        ++t.submissions;
        datasetId = ++t.datasets;
        _datasets[taskId][datasetId] = Dataset({publisher: msg.sender, cid: dataCid});
        datasetIdOf[taskId][dataCid] = datasetId;
        if (t.submissionStake != 0) _credit(taskId, msg.sender, t.submissionStake, PayoutKind.Stake);
        emit DatasetPublished(taskId, datasetId, msg.sender, dataCid);
    }

    /// @inheritdoc IBountyTree
    function recordScores(uint256 taskId, Score[] calldata scores) external {
        uint256 count = _checkBatch(scores.length);
        Task storage t = _scoredBy(taskId, msg.sender);
        ScoreBatch memory batch = ScoreBatch({
            stake: t.submissionStake,
            bestId: t.bestNodeId,
            bestAcc: t.bestAccuracyBps,
            raised: 0,
            weighed: 0,
            forfeited: 0,
            penalised: new address[](count),
            penalisedCount: 0
        });
        for (uint256 i = 0; i < count; ++i) {
            _applyScore(taskId, scores[i], batch);
        }
        t.pendingNodes -= uint24(count);
        if (batch.bestAcc >= t.targetAccuracyBps && t.deadline > block.timestamp + REVEAL_WINDOW) {
            // The target is reached: the task could be finalized at any moment, so it now takes
            // commitments for REVEAL_WINDOW only, and finalize waits for their reveals at most
            // REVEAL_WINDOW more (a later batch finds the deadline already near and skips this).
            t.deadline = uint32(block.timestamp + REVEAL_WINDOW);
            emit DeadlineBroughtForward(taskId, t.deadline);
        }
        t.bestNodeId = batch.bestId;
        t.bestAccuracyBps = batch.bestAcc;
        if (batch.raised != 0) t.raisedBps += batch.raised;
        if (batch.weighed != 0) t.computeWeight += batch.weighed;
        if (batch.forfeited != 0) t.forfeited += batch.forfeited;
        _adjustReputation(batch.penalised, batch.penalisedCount, REP_WORSE);
    }

    /// @inheritdoc IBountyTree
    function rejectNodes(uint256 taskId, uint256[] calldata nodeIds, uint8[] calldata reasons) external {
        uint256 count = _checkBatch(nodeIds.length);
        if (reasons.length != count) revert LengthMismatch();
        Task storage t = _scoredBy(taskId, msg.sender);
        uint256 stake = t.submissionStake;
        address[] memory penalised = new address[](count);
        uint256 judged;
        for (uint256 i = 0; i < count; ++i) {
            uint256 id = nodeIds[i];
            Node storage n = _pendingNode(taskId, id);
            if (reasons[i] == 0) revert InvalidReason(id);
            n.status = NodeStatus.Rejected;
            emit NodeRejected(taskId, id, reasons[i]);
            if (RejectReasons.returnsStake(reasons[i])) {
                // never judged on its own: its parent fell after it was revealed (a bait parent,
                // say), or one custodian alone found it at fault or could not train or score it
                // in time; it keeps its stake and its reputation
                if (stake != 0) _credit(taskId, n.author, stake, PayoutKind.Stake);
            } else {
                penalised[judged++] = n.author;
                if (stake != 0) emit StakeForfeited(taskId, id, stake);
            }
        }
        t.forfeited += uint96(stake * judged);
        t.pendingNodes -= uint24(count);
        _adjustReputation(penalised, judged, REP_REJECTED);
    }

    /// @inheritdoc IBountyTree
    function finalize(uint256 taskId) external {
        Task storage t = _dueTask(taskId);
        uint256 openToAllAt = uint256(t.deadline) + FINALIZE_GRACE;
        if (t.pendingNodes != 0 && block.timestamp <= openToAllAt) {
            revert WorkPending(taskId, t.pendingNodes, openToAllAt);
        }
        _finalize(taskId, t);
    }

    /// @inheritdoc IBountyTree
    function finalizeLeaving(uint256 taskId, uint256 pendingSeen) external {
        Task storage t = _scoredBy(taskId, msg.sender);
        _dueTask(taskId);
        if (t.pendingNodes != pendingSeen) revert PendingChanged(taskId, t.pendingNodes, pendingSeen);
        _finalize(taskId, t);
    }

    /// @inheritdoc IBountyTree
    function markCustodied(uint256 taskId) external onlyRole(CUSTODY_ROLE) {
        Task storage t = _unfinalizedTask(taskId);
        if (t.privacy != Privacy.AwaitingCustody) revert NotAwaitingCustody(taskId);
        t.privacy = Privacy.Custodied;
        custodyOf[taskId] = msg.sender;
        emit TaskCustodied(taskId, msg.sender);
    }

    /// @inheritdoc IBountyTree
    function markValidationUnread(uint256 taskId, bool unread) external {
        Task storage t = _scoredBy(taskId, msg.sender);
        // Which pending nodes waited for the rows is the scorer's to see (the oracle's rounds,
        // each custodian's walk): it takes the word back once none of them waits. A rule of
        // pending counts here held a busy task's word to its end.
        t.validationUnread = unread;
    }

    /// @dev An unfinalized task whose best reached its target, or whose deadline has passed.
    function _dueTask(uint256 taskId) private view returns (Task storage t) {
        t = _unfinalizedTask(taskId);
        if ((t.bestNodeId == 0 || t.bestAccuracyBps < t.targetAccuracyBps) && block.timestamp <= t.deadline) {
            revert NotFinalizable(taskId, t.deadline);
        }
    }

    /// @dev Everything of finalize after who may call it and whether the task is due: no
    ///      commitment's reveal window open; then the path is paid and the bond settled.
    function _finalize(uint256 taskId, Task storage t) private {
        uint32 winner = t.bestNodeId;
        if (t.openCommitments != 0 && block.timestamp <= _revealsCloseAt(t)) {
            revert RevealsOpen(taskId, t.openCommitments, _revealsCloseAt(t));
        }
        t.finalized = true;
        t.winnerNodeId = winner;
        uint256 pool = _pool(t);
        uint256 paid;
        if (winner != 0) {
            Payouts.PathPayout memory p = Payouts.ofPath(_nodes, _datasets[taskId], t, winner, pool, MAX_DEPTH);
            if (p.unclaimedRaise != 0 || p.unclaimedWeight != 0) {
                // raises or compute weights off the path: their parts wait for claim (slot 6
                // written only then, slot 7 only for compute), written before any call out
                t.raiseReserve = SafeCast.toUint96(p.raiseReserve);
                t.unclaimedRaiseBps = uint16(p.unclaimedRaise);
                t.unclaimedWeight = uint64(p.unclaimedWeight);
                if (p.computeReserve != 0) t.computeReserve = SafeCast.toUint96(p.computeReserve);
            }
            _payOut(taskId, p);
            paid = p.paid + p.raiseReserve + p.computeReserve;
        }
        // What the path was not paid (nor kept for the raises off it) goes back to the sponsor up
        // to its bounty, never beyond:
        // strangers' forfeited stakes and fees never reach the sponsor (through any account), and
        // neither do the fees of nodes left pending, which bought no score. Those are burned.
        uint256 left = pool - paid;
        uint256 refund = left < t.bounty ? left : t.bounty;
        if (refund != 0) _credit(taskId, t.sponsor, refund, PayoutKind.Refund);
        uint256 burned = left - refund + uint256(t.scoringFee) * t.pendingNodes;
        if (burned != 0) _credit(taskId, BURNED, burned, PayoutKind.Burned);
        if (t.bondState == BondState.Held) {
            if (t.pendingNodes != 0 && t.validationUnread) {
                // Work waited for the sponsor's validation rows, which its scorer said could not
                // be had (the oracle: the sponsor's validator failed its sessions for an hour;
                // a custodian: its share could not be read): the bond is burned. Nodes left
                // pending otherwise (an oracle that was away, a stranger's files that never
                // came, nodes the custodians gave up on) cost the sponsor nothing.
                t.bondState = BondState.Forfeited;
                emit BondForfeited(taskId, t.auditBond);
                _credit(taskId, BURNED, t.auditBond, PayoutKind.Burned);
            } else if (winner != 0 || t.pendingNodes != 0) {
                // a winner to audit, or nodes left for reasons of their own: the file shows
                // what was scored against, or the bond burns
                t.auditWindowEnd = uint40(block.timestamp + AUDIT_WINDOW);
            } else {
                // nothing waited (all rejected, or nothing submitted): the file decided nothing
                t.bondState = BondState.Returned;
                _credit(taskId, t.sponsor, t.auditBond, PayoutKind.Bond);
            }
        }
        emit TaskFinalized(taskId, winner, t.bestAccuracyBps, pool);
    }

    /// @inheritdoc IBountyTree
    function reclaimStake(uint256 nodeId) external {
        Node storage n = _nodes[nodeId];
        if (n.author != msg.sender) revert NotAuthor(msg.sender);
        if (n.status != NodeStatus.Pending) revert NodeNotPending(nodeId);
        Task storage t = _tasks[n.taskId];
        if (!t.finalized) revert TaskNotFinalized(n.taskId);
        if (t.submissionStake == 0) revert NothingToReclaim();
        n.status = NodeStatus.Reclaimed;
        _credit(n.taskId, msg.sender, t.submissionStake, PayoutKind.Stake);
    }

    /// @inheritdoc IBountyTree
    function claim(uint256 nodeId) external nonReentrant {
        Node storage n = _nodes[nodeId];
        uint256 raise = n.raiseBps;
        uint256 weight = n.computeWeight;
        if ((raise == 0 && weight == 0) || n.claimed) revert NothingToClaim(nodeId);
        uint256 taskId = n.taskId;
        Task storage t = _tasks[taskId];
        // paid at finalize on the winning path; off it, from what finalize kept
        if (!t.finalized || Payouts.onPath(_nodes, t.winnerNodeId, nodeId)) revert NothingToClaim(nodeId);
        n.claimed = true;
        // each part is its share of what is left, so that the last claim takes the rest to the wei
        uint256 raiseAmount;
        if (raise != 0) {
            uint256 unclaimed = t.unclaimedRaiseBps;
            raiseAmount = uint256(t.raiseReserve) * raise / unclaimed;
            t.raiseReserve -= uint96(raiseAmount);
            t.unclaimedRaiseBps = uint16(unclaimed - raise);
        }
        uint256 computeAmount;
        if (weight != 0) {
            uint256 unclaimed = t.unclaimedWeight;
            computeAmount = uint256(t.computeReserve) * weight / unclaimed;
            t.computeReserve -= uint96(computeAmount);
            t.unclaimedWeight = uint64(unclaimed - weight);
        }
        _payOut(taskId, Payouts.ofClaim(_nodes, _datasets[taskId], t, nodeId, raiseAmount, computeAmount));
        emit Claimed(taskId, nodeId, raiseAmount + computeAmount);
    }

    /// @inheritdoc IBountyTree
    function reclaimCommitment(bytes32 commitment) external {
        bytes32 key = _commitmentKey(msg.sender, commitment);
        Commitment memory cm = _commitments[key];
        if (cm.author != msg.sender) revert NotAuthor(msg.sender);
        Task storage t = _tasks[cm.taskId];
        if (!t.finalized) revert TaskNotFinalized(cm.taskId);
        uint256 stake = t.submissionStake;
        uint256 fee = t.scoringFee;
        if (stake + fee == 0) revert NothingToReclaim();
        delete _commitments[key];
        --t.openCommitments;
        // Finalize waited for its reveal, so it was left unrevealed by its author, perhaps held
        // as a free option on content someone else might reveal: its fee is burned.
        if (stake != 0) _credit(cm.taskId, msg.sender, stake, PayoutKind.Stake);
        if (fee != 0) _credit(cm.taskId, BURNED, fee, PayoutKind.Burned);
    }

    // ─────────────────────────── after finalize ──────────────────────────

    /// @inheritdoc IBountyTree
    function publishValidation(uint256 taskId, bytes32 fileCid, bytes32 salt) external {
        Task storage t = _finalizedTask(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(msg.sender);
        if (t.validationPublished) revert ValidationAlreadyPublished(taskId);
        if (sha256(abi.encodePacked(salt, fileCid)) != t.validationCommitment) revert WrongOpening(taskId);
        t.validationPublished = true;
        emit ValidationPublished(taskId, fileCid, salt);
        if (t.bondState == BondState.Held && block.timestamp <= t.auditWindowEnd) {
            t.bondState = BondState.Returned;
            _credit(taskId, t.sponsor, t.auditBond, PayoutKind.Bond);
        }
    }

    /// @inheritdoc IBountyTree
    /// @dev Burned, not paid to the path: the sponsor may control any account on it (its own
    ///      second account may even be the winner), so only a bond nobody receives makes
    ///      withholding the file cost the sponsor the bond.
    function forfeitBond(uint256 taskId) external {
        Task storage t = _finalizedTask(taskId);
        if (t.bondState != BondState.Held) revert NoBondHeld(taskId);
        if (block.timestamp <= t.auditWindowEnd) revert AuditWindowOpen(taskId, t.auditWindowEnd);
        t.bondState = BondState.Forfeited;
        emit BondForfeited(taskId, t.auditBond);
        _credit(taskId, BURNED, t.auditBond, PayoutKind.Burned);
    }

    /// @inheritdoc IBountyTree
    function recordTestScore(uint256 taskId, uint16 accuracyBps) external onlyRole(ORACLE_ROLE) {
        Task storage t = _finalizedTask(taskId);
        // a private winner's test score could only come from its custodians, who do not give one
        if (t.privacy != Privacy.Public) revert NotScorer(taskId, msg.sender);
        uint256 winner = t.winnerNodeId;
        if (winner == 0) revert NoWinner(taskId);
        if (t.testScored) revert TestScoreAlreadyRecorded(taskId);
        if (accuracyBps > BPS) revert AccuracyOutOfRange(winner, accuracyBps);
        t.testScored = true;
        t.testAccuracyBps = accuracyBps;
        emit TestScoreRecorded(taskId, winner, accuracyBps);
    }

    /// @inheritdoc IBountyTree
    function withdraw() external nonReentrant {
        uint256 amount = pendingWithdrawals[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        pendingWithdrawals[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    // ─────────────────────────────── views ───────────────────────────────

    /// @inheritdoc IBountyTree
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _tasks[taskId];
    }

    /// @inheritdoc IBountyTree
    function getNode(uint256 nodeId) external view returns (Node memory) {
        return _nodes[nodeId];
    }

    /// @inheritdoc IBountyTree
    function getNodes(uint256[] calldata nodeIds) external view returns (Node[] memory nodes) {
        if (nodeIds.length > MAX_VIEW) revert BatchSize(nodeIds.length, MAX_VIEW);
        nodes = new Node[](nodeIds.length);
        for (uint256 i = 0; i < nodeIds.length; ++i) {
            nodes[i] = _nodes[nodeIds[i]];
        }
    }

    /// @inheritdoc IBountyTree
    function getDataset(uint256 taskId, uint256 datasetId) external view returns (Dataset memory) {
        return _datasets[taskId][datasetId];
    }

    /// @inheritdoc IBountyTree
    function getCommitment(address author, bytes32 commitment) external view returns (Commitment memory) {
        return _commitments[_commitmentKey(author, commitment)];
    }

    /// @inheritdoc IBountyTree
    function counts() external view returns (uint256 tasks, uint256 nodes) {
        Counters memory c = _counters;
        return (c.tasks, c.nodes);
    }

    // ────────────────────────────── internals ────────────────────────────

    /// @dev kind 0: tasks, 1: nodes. One packed slot for both counters.
    function _nextId(uint256 kind) private returns (uint256 id) {
        Counters storage c = _counters;
        id = kind == 0 ? ++c.tasks : ++c.nodes;
        if (id == type(uint32).max) revert TooManyItems();
    }

    /// @dev Checks and consumes the caller's commitment `c` to task `taskId`: made by this
    ///      account, staked in this task, in an earlier block (so whoever sees a reveal in the
    ///      mempool cannot commit to its contents and reveal first), and the task not finalized
    ///      and at most REVEAL_WINDOW past its deadline (every commitment was made by then).
    function _takeCommitment(uint256 taskId, bytes32 c) private returns (Task storage t) {
        bytes32 key = _commitmentKey(msg.sender, c);
        Commitment memory cm = _commitments[key];
        if (cm.author == address(0)) revert UnknownCommitment(c);
        if (cm.taskId != taskId) revert CommitmentNotInTask(c, cm.taskId);
        if (cm.blockNumber == block.number) revert RevealTooEarly(cm.blockNumber);
        t = _unfinalizedTask(taskId);
        if (block.timestamp > _revealsCloseAt(t)) revert RevealWindowClosed(taskId, _revealsCloseAt(t));
        delete _commitments[key];
        --t.openCommitments;
    }

    /// @dev TaskCreated from the fields just stored (warm reads), which keeps createTask's
    ///      twelve parameters off the stack when the event is built.
    function _emitTaskCreated(uint256 taskId, Task storage t, uint256 auditBond) private {
        emit TaskCreated(
            taskId,
            t.sponsor,
            t.bounty,
            t.specCid,
            t.validationCommitment,
            t.targetAccuracyBps,
            t.deadline,
            t.submissionStake,
            t.scoringFee,
            t.maxSubmissions,
            auditBond
        );
    }

    function _commitmentKey(address author, bytes32 commitment) private pure returns (bytes32) {
        return keccak256(abi.encode(author, commitment));
    }

    /// @dev A commitment: exactly stake + fee paid, and the account's cap enforced
    ///      where there is one.
    function _takeSubmission(uint256 taskId, Task storage t) private {
        uint256 price = uint256(t.submissionStake) + t.scoringFee;
        if (msg.value != price) revert WrongStake(price, msg.value);
        uint256 cap = t.maxSubmissions;
        if (cap != 0) {
            uint256 made = submissionsBy[taskId][msg.sender];
            if (made >= cap) revert SubmissionCapReached(taskId, msg.sender, cap);
            submissionsBy[taskId][msg.sender] = made + 1;
        }
    }

    /// @dev One more node in the tree, awaiting the oracle (task slot 0, already read by the
    ///      caller). A commitment's fee stays with the commitment until it is revealed here.
    function _addNode(Task storage t) private {
        if (t.submissions == type(uint24).max) revert TooManyItems();
        ++t.submissions;
        ++t.pendingNodes;
    }

    /// @dev What finalize shares out: the bounty, the stakes forfeited and the fee of every node
    ///      the oracle scored or rejected. The fee is fixed at creation and every node paid it
    ///      once, so those fees are scoringFee × (nodes − pending) and no running total is
    ///      written per submission. The fees of nodes still pending at finalize bought no score:
    ///      finalize burns them (they reach neither the path nor the sponsor, and a submitter
    ///      whose junk the oracle had not rejected yet does not get them back either).
    function _pool(Task storage t) private view returns (uint256) {
        return uint256(t.bounty) + t.forfeited + uint256(t.scoringFee) * (t.submissions - t.pendingNodes);
    }

    function _unfinalizedTask(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.deadline == 0) revert UnknownTask(taskId);
        if (t.finalized) revert TaskIsFinalized(taskId);
    }

    /// @dev An unfinalized task `account` may score: the oracle a public task, the custody
    ///      contract that marked a private one (the oracle's role never reaches a private node,
    ///      nor another holder of CUSTODY_ROLE). A custody whose role was revoked scores nothing.
    function _scoredBy(uint256 taskId, address account) private view returns (Task storage t) {
        t = _unfinalizedTask(taskId);
        // (a private task awaiting its custody has none: custodyOf is still zero)
        bool scorer = t.privacy == Privacy.Public
            ? hasRole(ORACLE_ROLE, account)
            : account == custodyOf[taskId] && hasRole(CUSTODY_ROLE, account);
        if (!scorer) revert NotScorer(taskId, account);
    }

    function _finalizedTask(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.deadline == 0) revert UnknownTask(taskId);
        if (!t.finalized) revert TaskNotFinalized(taskId);
    }

    /// @dev The last moment a commitment to `t` may be revealed, and until which finalize waits
    ///      for open commitments: REVEAL_WINDOW after the deadline (every commitment was made by
    ///      then).
    function _revealsCloseAt(Task storage t) private view returns (uint256) {
        return uint256(t.deadline) + REVEAL_WINDOW;
    }

    /// @dev A task that still takes new nodes: exists, not finalized, deadline not passed.
    function _openTask(uint256 taskId) private view returns (Task storage t) {
        t = _unfinalizedTask(taskId);
        if (block.timestamp > t.deadline) revert DeadlinePassed(taskId, t.deadline);
    }

    function _pendingNode(uint256 taskId, uint256 nodeId) private view returns (Node storage n) {
        n = _nodes[nodeId];
        if (n.author == address(0) || n.taskId != taskId) revert NodeNotInTask(nodeId, taskId);
        if (n.status != NodeStatus.Pending) revert NodeNotPending(nodeId);
    }

    /// @dev Checks and writes one score (node slot 2; slot 0 only to re-attribute the data), then
    ///      settles the node's stake: a trained node below its parent forfeits it to the pool,
    ///      any other gets it back. Compute is paid only for training on published data.
    function _applyScore(uint256 taskId, Score calldata s, ScoreBatch memory batch) private {
        uint256 id = s.nodeId;
        uint16 acc = s.accuracyBps;
        uint64 verifiedOps = s.verifiedOps;
        Node storage n = _pendingNode(taskId, id);
        if (acc > BPS) revert AccuracyOutOfRange(id, acc);
        if (s.datasetId != n.datasetId) {
            // only private → published, for a trained node, to a dataset of this task
            if (n.datasetId != 0 || n.parentId == 0 || _datasets[taskId][s.datasetId].publisher == address(0)) {
                revert BadAttribution(id, s.datasetId);
            }
            n.datasetId = uint24(s.datasetId);
            emit NodeAttributed(taskId, id, s.datasetId);
        }
        if (verifiedOps != 0 && s.datasetId == 0) revert ComputeOnPrivateData(id);
        bool worse;
        if (n.parentId != 0) {
            Node storage parent = _nodes[n.parentId];
            if (parent.status != NodeStatus.Scored) revert ParentNotScored(id, n.parentId);
            worse = acc < parent.accuracyBps;
        }
        // A new task best by training: what it adds over the best before it is its raise, whoever
        // it copied (an architecture moves the best without a raise: it was not trained). The
        // replayed training on its path, itself included, is given its compute weight (_weigh).
        uint16 raise = n.parentId != 0 && acc > batch.bestAcc ? acc - batch.bestAcc : 0;
        uint256 above = raise != 0 ? _opsAbove(n.parentId) : 0;
        uint64 own = raise != 0 && verifiedOps != 0
            ? uint64(uint256(raise) * WEIGHT_PER_BPS * verifiedOps / (verifiedOps + above))
            : 0;
        n.status = NodeStatus.Scored; // the score slot, written once
        n.accuracyBps = acc;
        n.verifiedOps = verifiedOps;
        n.raiseBps = raise;
        n.computeWeight = own;
        emit NodeScored(taskId, id, acc, verifiedOps);

        if (worse) {
            batch.forfeited += batch.stake;
            batch.penalised[batch.penalisedCount++] = n.author;
            emit StakeForfeited(taskId, id, batch.stake);
        } else if (batch.stake != 0) {
            _credit(taskId, n.author, batch.stake, PayoutKind.Stake);
        }
        if (raise != 0) {
            batch.raised += raise;
            batch.weighed += own;
            if (above != 0) batch.weighed += _weighAbove(n.parentId, raise, verifiedOps + above);
        }
        if (batch.bestId == 0 || acc > batch.bestAcc || (acc == batch.bestAcc && id < batch.bestId)) {
            batch.bestId = uint32(id);
            batch.bestAcc = acc;
        }
    }

    function _checkBatch(uint256 count) private pure returns (uint256) {
        if (count == 0 || count > MAX_BATCH) revert BatchSize(count, MAX_BATCH);
        return count;
    }

    function _credit(uint256 taskId, address account, uint256 amount, PayoutKind kind) private {
        pendingWithdrawals[account] += amount;
        emit PayoutCredited(taskId, account, amount, uint8(kind));
    }

    /// @dev One Reputation call for the first `count` accounts, all by the same delta.
    function _adjustReputation(address[] memory accounts, uint256 count, int256 delta) private {
        int256[] memory deltas = new int256[](count);
        for (uint256 i = 0; i < count; ++i) {
            deltas[i] = delta;
        }
        _writeReputation(accounts, deltas, count);
    }

    /// @dev The replayed operations of the trained nodes from `id` up (a new best's ancestors).
    function _opsAbove(uint256 id) private view returns (uint256 ops) {
        for (; _nodes[id].parentId != 0; id = _nodes[id].parentId) {
            ops += _nodes[id].verifiedOps;
        }
    }

    /// @dev Gives the replayed training on a new best's path above it (the trained nodes from `id`
    ///      up, at most MAX_DEPTH) their part of `raise` × WEIGHT_PER_BPS of compute weight, by
    ///      verifiedOps out of the path's `ops` (the new best's own part is written with its
    ///      score), and returns what it gave (rounded down). A raise whose path replayed nothing
    ///      gives nothing: its part of the compute share goes to the refund.
    function _weighAbove(uint256 id, uint256 raise, uint256 ops) private returns (uint64 given) {
        uint256 weight = raise * WEIGHT_PER_BPS;
        for (; _nodes[id].parentId != 0; id = _nodes[id].parentId) {
            Node storage node = _nodes[id];
            uint256 o = node.verifiedOps;
            if (o != 0) {
                uint64 w = uint64(weight * o / ops);
                node.computeWeight += w;
                given += w;
            }
        }
    }

    /// @dev Credits a payout (a path's, or a node's off it), burns its levy and rewards its
    ///      accounts' reputation.
    function _payOut(uint256 taskId, Payouts.PathPayout memory p) private {
        for (uint256 i = 0; i < p.creditCount; ++i) {
            Payouts.Credit memory c = p.credits[i];
            _credit(taskId, c.account, c.amount, c.kind);
        }
        if (p.levy != 0) _credit(taskId, BURNED, p.levy, PayoutKind.Burned);
        _rewardReputation(p);
    }

    /// @dev To each account the path paid, a point per REPUTATION_POINT_PRICE of its levies (none
    ///      to the sponsor, who pays none; none for dust): one Reputation call.
    function _rewardReputation(Payouts.PathPayout memory p) private {
        address[] memory earned = new address[](p.accountCount);
        int256[] memory deltas = new int256[](p.accountCount);
        uint256 count;
        for (uint256 i = 0; i < p.accountCount; ++i) {
            uint256 points = p.levies[i] / REPUTATION_POINT_PRICE;
            if (points != 0) {
                earned[count] = p.accounts[i];
                deltas[count++] = int256(points);
            }
        }
        _writeReputation(earned, deltas, count);
    }

    /// @dev One Reputation call for the first `count` entries of `accounts` and `deltas` (arrays
    ///      sized for the most there could be, cut to `count` in place); none for none.
    function _writeReputation(address[] memory accounts, int256[] memory deltas, uint256 count) private {
        if (count == 0) return;
        assembly ("memory-safe") {
            mstore(accounts, count)
            mstore(deltas, count)
        }
        reputation.adjust(accounts, deltas);
    }
}
