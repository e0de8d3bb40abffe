// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Reputation} from "./Reputation.sol";

/// @title BountyTree
/// @notice Escrowed bounties for models trained on private data. Every contribution to a task
///         is a node in a tree (architectures at depth 1, trained weights below); an oracle
///         scores nodes against the sponsor's private validation set; when a node reaches the
///         target (or the deadline passes) the path from the architecture to the best node is
///         paid: data by accuracy gain, compute by verified operations, expertise to the
///         architect. Payouts are credited and pulled with {withdraw}.
/// @dev Storage is packed so that each operation touches as few slots as possible: a
///      submission reads only task slot 0, scoring writes only node slot 2, and the best node
///      is tracked while scoring so that {finalize} walks one path (at most MAX_DEPTH nodes)
///      and never the whole tree. Ids are stored as uint32 (4 billion of each is enough for
///      one deployment) and exposed as uint256.
contract BountyTree is AccessControl, ReentrancyGuard {
    // ───────────────────────────── constants ─────────────────────────────

    /// @notice Role allowed to record scores and reject nodes.
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    /// @notice Longest path from the task to a node; bounds the cost of {finalize}.
    uint256 public constant MAX_DEPTH = 32;
    /// @notice Most nodes {recordScores} or {rejectNodes} take in one call.
    uint256 public constant MAX_BATCH = 64;
    /// @notice Most nodes {getNodes} returns in one call.
    uint256 public constant MAX_VIEW = 500;
    uint256 private constant BPS = 10_000;

    /// @notice Reputation granted for each payout credited on a winning path.
    int256 public constant REP_PAID = 10;
    /// @notice Reputation lost by a node that scores below its parent.
    int256 public constant REP_WORSE = -10;
    /// @notice Reputation lost by a node the oracle rejects.
    int256 public constant REP_REJECTED = -20;
    /// @notice Least an account must be paid by a task (stakes and refunds aside) for that task
    ///         to raise its reputation; below it a task is dust and proves nothing.
    uint256 public constant MIN_REPUTATION_PAYOUT = 1e15;
    /// @notice How long after the deadline a task with unscored nodes may be finalized by anyone
    ///         but the oracle (the oracle may finalize as soon as the task is due).
    uint256 public constant FINALIZE_GRACE = 1 days;

    // ─────────────────────────────── types ───────────────────────────────

    /// @dev Pending is 0 so that creating a node never writes its score slot for nothing.
    enum NodeStatus {
        Pending,
        Scored,
        Rejected,
        Reclaimed
    }

    enum PayoutKind {
        Data,
        Compute,
        Expertise,
        Refund,
        Stake
    }

    struct Task {
        // slot 0: everything a submission needs to read
        uint96 submissionStake;
        uint64 deadline;
        uint16 targetAccuracyBps;
        uint16 dataShareBps;
        uint16 computeShareBps;
        uint16 expertiseShareBps;
        bool finalized;
        uint24 pendingNodes; // submitted and neither scored nor rejected
        // slot 1
        address sponsor;
        uint96 bounty;
        // slots 2, 3
        bytes32 specCid;
        bytes32 validationCommitment;
        // slot 4: written by scoring and finalization
        uint32 bestNodeId;
        uint16 bestAccuracyBps;
        uint32 winnerNodeId;
        uint96 forfeited;
    }

    /// @dev An architecture is the node with parentId 0 (its cid is its spec); a trained node's
    ///      cid is its weights. A submission writes slots 0 and 1 only.
    struct Node {
        // slot 0: the tree, written at submission (datasetId again if the oracle re-attributes)
        address author;
        uint32 taskId;
        uint32 parentId;
        uint8 depth;
        uint24 datasetId;
        // slot 1
        bytes32 cid;
        // slot 2: the score
        NodeStatus status;
        uint16 accuracyBps;
        uint64 verifiedOps;
    }

    /// @notice One node's score as the oracle records it.
    /// @param nodeId A pending node of the task.
    /// @param accuracyBps Accuracy on the validation set, in 0..10000.
    /// @param verifiedOps Training operations the oracle reproduced by replay; only a node trained
    ///        on a published dataset has any.
    /// @param datasetId The dataset the node was trained on: as declared, or a published dataset of
    ///        the task whose replay reproduced a node declared as trained on private data.
    struct Score {
        uint256 nodeId;
        uint16 accuracyBps;
        uint64 verifiedOps;
        uint256 datasetId;
    }

    struct Dataset {
        address publisher;
        uint32 taskId;
        bytes32 cid;
    }

    struct Commitment {
        address author;
        uint32 taskId;
        uint64 blockNumber;
    }

    /// @dev Running state of one {recordScores} call, kept in memory so the task's slot 4 is
    ///      written once per batch.
    struct ScoreBatch {
        uint96 stake;
        uint32 bestId;
        uint16 bestAcc;
        uint96 forfeited;
        address[] penalised;
        uint256 penalisedCount;
    }

    /// @dev Running state of one {finalize} payout.
    struct Payout {
        uint256 taskId;
        address sponsor;
        uint256 dataPool;
        uint256 computePool;
        uint256 totalGain;
        uint256 totalOps;
        uint256 paid;
        // distinct accounts paid so far and what each was paid, for reputation
        address[] paidTo;
        uint256[] paidAmount;
        uint256 paidCount;
    }

    struct Counters {
        uint32 tasks;
        uint32 nodes;
        uint32 datasets;
    }

    // ────────────────────────────── storage ──────────────────────────────

    /// @notice The reputation registry this marketplace writes.
    Reputation public immutable reputation;

    Counters private _counters;
    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 nodeId => Node) private _nodes;
    mapping(uint256 datasetId => Dataset) private _datasets;
    /// @dev Keyed by keccak256(abi.encode(author, commitment)): each account has its own namespace,
    ///      so nobody can block a commitment by staking the same hash first.
    mapping(bytes32 key => Commitment) private _commitments;
    /// @notice Wei credited to `account` and not yet withdrawn.
    mapping(address account => uint256) public pendingWithdrawals;

    // ─────────────────────────────── events ──────────────────────────────

    event TaskCreated(
        uint256 indexed taskId,
        address indexed sponsor,
        uint256 bounty,
        bytes32 specCid,
        bytes32 validationCommitment,
        uint16 targetAccuracyBps,
        uint64 deadline,
        uint256 submissionStake
    );
    event ArchitectureProposed(uint256 indexed taskId, uint256 indexed nodeId, address indexed author, bytes32 cid);
    event DatasetPublished(uint256 indexed taskId, uint256 indexed datasetId, address indexed publisher, bytes32 cid);
    event SubmissionCommitted(uint256 indexed taskId, address indexed author, bytes32 commitment);
    event NodeSubmitted(
        uint256 indexed taskId,
        uint256 indexed nodeId,
        uint256 indexed parentId,
        address author,
        bytes32 cid,
        uint256 datasetId
    );
    event NodeScored(uint256 indexed taskId, uint256 indexed nodeId, uint16 accuracyBps, uint64 verifiedOps);
    /// @notice The oracle's replay showed that a node declared as trained on private data was
    ///         trained on this published dataset; its data share goes to the dataset's publisher.
    event NodeAttributed(uint256 indexed taskId, uint256 indexed nodeId, uint256 datasetId);
    event NodeRejected(uint256 indexed taskId, uint256 indexed nodeId, uint8 reason);
    event StakeForfeited(uint256 indexed taskId, uint256 indexed nodeId, uint256 amount);
    event TaskFinalized(uint256 indexed taskId, uint256 winnerNodeId, uint16 accuracyBps, uint256 pool);
    event PayoutCredited(uint256 indexed taskId, address indexed account, uint256 amount, uint8 kind);
    event Withdrawn(address indexed account, uint256 amount);

    // ─────────────────────────────── errors ──────────────────────────────

    error NoBounty();
    error AmountTooLarge(uint256 amount);
    error EmptyCid();
    error EmptyCommitment();
    error DeadlineNotInFuture(uint256 deadline, uint256 now_);
    error TargetOutOfRange(uint256 targetAccuracyBps);
    error SharesMustSumTo10000(uint256 sum);
    error UnknownTask(uint256 taskId);
    error TaskIsFinalized(uint256 taskId);
    error DeadlinePassed(uint256 taskId, uint256 deadline);
    error WrongStake(uint256 expected, uint256 sent);
    error CommitmentExists(bytes32 commitment);
    error UnknownCommitment(bytes32 commitment);
    error CommitmentNotInTask(bytes32 commitment, uint256 stakedIn);
    error RevealTooEarly(uint256 commitBlock);
    error ParentNotInTask(uint256 parentId, uint256 taskId);
    error ParentRejected(uint256 parentId);
    error TreeTooDeep(uint256 maxDepth);
    error DatasetNotInTask(uint256 datasetId, uint256 taskId);
    error BatchSize(uint256 size, uint256 max);
    error LengthMismatch();
    error NodeNotInTask(uint256 nodeId, uint256 taskId);
    error NodeNotPending(uint256 nodeId);
    error AccuracyOutOfRange(uint256 nodeId, uint256 accuracyBps);
    error ComputeOnPrivateData(uint256 nodeId);
    error BadAttribution(uint256 nodeId, uint256 datasetId);
    error ParentNotScored(uint256 nodeId, uint256 parentId);
    error InvalidReason(uint256 nodeId);
    error NotFinalizable(uint256 taskId, uint256 deadline);
    error WorkPending(uint256 taskId, uint256 pendingNodes, uint256 openToAllAt);
    error TaskNotFinalized(uint256 taskId);
    error NotAuthor(address caller);
    error NothingToReclaim();
    error NothingToWithdraw(address account);
    error TransferFailed(address account, uint256 amount);
    error TooManyItems();

    /// @param reputation_ The Reputation registry; its deployer must bind this contract as writer.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (grants and revokes oracles).
    /// @param oracle First holder of ORACLE_ROLE.
    constructor(Reputation reputation_, address admin, address oracle) {
        reputation = reputation_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ORACLE_ROLE, oracle);
    }

    // ───────────────────────────── lifecycle ─────────────────────────────

    /// @notice Posts a bounty (msg.value) for a model that reaches `targetAccuracyBps` on the
    ///         sponsor's private validation set, committed to by its SHA-256.
    /// @param specCid Task description on IPFS (CIDv0 digest).
    /// @param validationCommitment sha256 of the validation file's bytes; the file is never uploaded.
    /// @param targetAccuracyBps Accuracy that ends the task early, in 1..10000.
    /// @param deadline Unix time after which anyone may finalize.
    /// @param dataShareBps Share of the pool paid for accuracy gained on data.
    /// @param computeShareBps Share paid for verified training operations.
    /// @param expertiseShareBps Share paid to the architect of the winning path.
    /// @param submissionStake Wei each proposal and commitment must escrow.
    /// @return taskId The new task's id.
    function createTask(
        bytes32 specCid,
        bytes32 validationCommitment,
        uint16 targetAccuracyBps,
        uint64 deadline,
        uint16 dataShareBps,
        uint16 computeShareBps,
        uint16 expertiseShareBps,
        uint256 submissionStake
    ) external payable returns (uint256 taskId) {
        if (msg.value == 0) revert NoBounty();
        if (msg.value > type(uint96).max) revert AmountTooLarge(msg.value);
        if (submissionStake > type(uint96).max) revert AmountTooLarge(submissionStake);
        if (specCid == bytes32(0)) revert EmptyCid();
        if (validationCommitment == bytes32(0)) revert EmptyCommitment();
        if (deadline <= block.timestamp) revert DeadlineNotInFuture(deadline, block.timestamp);
        if (targetAccuracyBps == 0 || targetAccuracyBps > BPS) revert TargetOutOfRange(targetAccuracyBps);
        uint256 sum = uint256(dataShareBps) + computeShareBps + expertiseShareBps;
        if (sum != BPS) revert SharesMustSumTo10000(sum);

        taskId = _nextId(0);
        Task storage t = _tasks[taskId];
        t.submissionStake = uint96(submissionStake);
        t.deadline = deadline;
        t.targetAccuracyBps = targetAccuracyBps;
        t.dataShareBps = dataShareBps;
        t.computeShareBps = computeShareBps;
        t.expertiseShareBps = expertiseShareBps;
        t.sponsor = msg.sender;
        t.bounty = uint96(msg.value);
        t.specCid = specCid;
        t.validationCommitment = validationCommitment;
        emit TaskCreated(
            taskId, msg.sender, msg.value, specCid, validationCommitment, targetAccuracyBps, deadline, submissionStake
        );
    }

    /// @notice Proposes an architecture (a model spec with initial weights) as a depth-1 node.
    /// @dev Escrows exactly the task's stake, returned when the node is scored.
    /// @param taskId An open task.
    /// @param specCid The `bountytree/model@1` spec on IPFS.
    /// @return nodeId The new node's id.
    function proposeArchitecture(uint256 taskId, bytes32 specCid) external payable returns (uint256 nodeId) {
        Task storage t = _openTask(taskId);
        if (msg.value != t.submissionStake) revert WrongStake(t.submissionStake, msg.value);
        if (specCid == bytes32(0)) revert EmptyCid();
        _addPending(t);
        nodeId = _nextId(1);
        Node storage n = _nodes[nodeId];
        n.author = msg.sender;
        n.taskId = uint32(taskId);
        n.depth = 1;
        n.cid = specCid;
        emit ArchitectureProposed(taskId, nodeId, msg.sender, specCid);
    }

    /// @notice Publishes a dataset that anyone may train on for this task; the data share of
    ///         every node trained on it goes to the publisher.
    /// @param taskId An open task.
    /// @param dataCid The dataset file on IPFS.
    /// @return datasetId The new dataset's id.
    function publishDataset(uint256 taskId, bytes32 dataCid) external returns (uint256 datasetId) {
        _openTask(taskId);
        if (dataCid == bytes32(0)) revert EmptyCid();
        datasetId = _nextId(2);
        _datasets[datasetId] = Dataset({publisher: msg.sender, taskId: uint32(taskId), cid: dataCid});
        emit DatasetPublished(taskId, datasetId, msg.sender, dataCid);
    }

    /// @notice First half of a submission: escrows the stake behind a hash that hides the
    ///         weights' CID, so nobody can copy it out of the mempool.
    /// @param taskId An open task.
    /// @param commitment keccak256(abi.encode(msg.sender, taskId, parentId, weightsCid, datasetId, salt)).
    function commitSubmission(uint256 taskId, bytes32 commitment) external payable {
        Task storage t = _openTask(taskId);
        if (msg.value != t.submissionStake) revert WrongStake(t.submissionStake, msg.value);
        if (commitment == bytes32(0)) revert EmptyCommitment();
        bytes32 key = _commitmentKey(msg.sender, commitment);
        if (_commitments[key].author != address(0)) revert CommitmentExists(commitment);
        _commitments[key] =
            Commitment({author: msg.sender, taskId: uint32(taskId), blockNumber: uint64(block.number)});
        emit SubmissionCommitted(taskId, msg.sender, commitment);
    }

    /// @notice Second half of a submission, in a later block than the commitment, by the account
    ///         that made it and into the task its stake was paid to: adds the trained node under
    ///         `parentId`. The stake stays escrowed in that task.
    /// @param taskId The task of the commitment.
    /// @param parentId The node training started from (same task, not rejected).
    /// @param weightsCid The trained weights (safetensors) on IPFS.
    /// @param datasetId 0 for the author's own private data, else a dataset published to this task.
    /// @param salt The secret that made the commitment unguessable.
    /// @return nodeId The new node's id.
    function revealSubmission(uint256 taskId, uint256 parentId, bytes32 weightsCid, uint256 datasetId, bytes32 salt)
        external
        returns (uint256 nodeId)
    {
        bytes32 c = keccak256(abi.encode(msg.sender, taskId, parentId, weightsCid, datasetId, salt));
        bytes32 key = _commitmentKey(msg.sender, c);
        Commitment memory cm = _commitments[key];
        if (cm.author == address(0)) revert UnknownCommitment(c);
        if (cm.taskId != taskId) revert CommitmentNotInTask(c, cm.taskId);
        if (cm.blockNumber >= block.number) revert RevealTooEarly(cm.blockNumber);
        Task storage t = _openTask(taskId);
        if (weightsCid == bytes32(0)) revert EmptyCid();
        Node storage parent = _nodes[parentId];
        if (parentId == 0 || parent.taskId != taskId) revert ParentNotInTask(parentId, taskId);
        if (parent.depth >= MAX_DEPTH) revert TreeTooDeep(MAX_DEPTH);
        if (parent.status == NodeStatus.Rejected) revert ParentRejected(parentId);
        if (datasetId != 0 && _datasets[datasetId].taskId != taskId) revert DatasetNotInTask(datasetId, taskId);

        delete _commitments[key];
        _addPending(t);
        nodeId = _nextId(1);
        Node storage n = _nodes[nodeId];
        n.author = msg.sender;
        n.taskId = uint32(taskId);
        n.parentId = uint32(parentId);
        n.depth = parent.depth + 1;
        n.datasetId = uint24(datasetId);
        n.cid = weightsCid;
        emit NodeSubmitted(taskId, nodeId, parentId, msg.sender, weightsCid, datasetId);
    }

    /// @notice Records the oracle's scores. Returns each node's stake, or forfeits it to the
    ///         task's pool when a trained node scores below its parent.
    /// @dev Parents must be scored first (a batch ordered by id satisfies this).
    /// @param taskId The task every node belongs to.
    /// @param scores At most MAX_BATCH scores of pending nodes.
    function recordScores(uint256 taskId, Score[] calldata scores) external onlyRole(ORACLE_ROLE) {
        uint256 count = _checkBatch(scores.length);
        Task storage t = _unfinalizedTask(taskId);
        ScoreBatch memory batch = ScoreBatch({
            stake: t.submissionStake,
            bestId: t.bestNodeId,
            bestAcc: t.bestAccuracyBps,
            forfeited: 0,
            penalised: new address[](count),
            penalisedCount: 0
        });
        for (uint256 i = 0; i < count; ++i) {
            _applyScore(taskId, scores[i], batch);
        }
        t.pendingNodes -= uint24(count);
        t.bestNodeId = batch.bestId;
        t.bestAccuracyBps = batch.bestAcc;
        if (batch.forfeited != 0) t.forfeited += batch.forfeited;
        _adjustReputation(batch.penalised, batch.penalisedCount, REP_WORSE);
    }

    /// @notice Rejects nodes whose files are missing, malformed, unsafe or mis-shaped; their
    ///         stakes join the task's pool and their authors lose reputation.
    /// @param taskId The task every node belongs to.
    /// @param nodeIds Pending nodes, at most MAX_BATCH.
    /// @param reasons A non-zero reason code per node: 1 missing (files never reached the store),
    ///        2 not-safetensors, 3 shape-mismatch, 4 not-finite, 5 too-large, 6 invalid-spec,
    ///        7 parent-rejected, 8 corrupt, 9 copy (closer to another earlier node than to its
    ///        parent, or equal to its parent), 10 not-initial (an architecture whose weights are
    ///        not its spec's seeded initialisation), 11 replay-mismatch (training on the declared
    ///        published dataset does not reproduce the weights), 12 unfit-spec (the spec does not
    ///        fit the task's features and classes), 13 too-costly (replaying its training would
    ///        exceed the oracle's budget). docs/design.md says more.
    function rejectNodes(uint256 taskId, uint256[] calldata nodeIds, uint8[] calldata reasons)
        external
        onlyRole(ORACLE_ROLE)
    {
        uint256 count = _checkBatch(nodeIds.length);
        if (reasons.length != count) revert LengthMismatch();
        Task storage t = _unfinalizedTask(taskId);
        address[] memory penalised = new address[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint256 id = nodeIds[i];
            Node storage n = _pendingNode(taskId, id);
            if (reasons[i] == 0) revert InvalidReason(id);
            n.status = NodeStatus.Rejected;
            penalised[i] = n.author;
            emit NodeRejected(taskId, id, reasons[i]);
            if (t.submissionStake != 0) emit StakeForfeited(taskId, id, t.submissionStake);
        }
        t.forfeited += uint96(uint256(t.submissionStake) * count);
        t.pendingNodes -= uint24(count);
        _adjustReputation(penalised, count, REP_REJECTED);
    }

    /// @notice Ends a task whose best node reached the target, or whose deadline has passed,
    ///         and credits the payouts along the path from the architecture to the winner
    ///         (best scored node; ties go to the lowest id). What cannot be paid goes back to
    ///         the sponsor. The oracle may call it as soon as the task is due; anyone else once
    ///         every submitted node is scored or rejected, or FINALIZE_GRACE after the deadline,
    ///         so that nobody cuts off work submitted in time.
    /// @param taskId An unfinalized task.
    function finalize(uint256 taskId) external {
        Task storage t = _unfinalizedTask(taskId);
        uint32 winner = t.bestNodeId;
        if ((winner == 0 || t.bestAccuracyBps < t.targetAccuracyBps) && block.timestamp <= t.deadline) {
            revert NotFinalizable(taskId, t.deadline);
        }
        uint256 openToAllAt = uint256(t.deadline) + FINALIZE_GRACE;
        if (t.pendingNodes != 0 && block.timestamp <= openToAllAt && !hasRole(ORACLE_ROLE, msg.sender)) {
            revert WorkPending(taskId, t.pendingNodes, openToAllAt);
        }
        t.finalized = true;
        t.winnerNodeId = winner;
        uint256 pool = uint256(t.bounty) + t.forfeited;
        uint256 paid = winner == 0 ? 0 : _payPath(taskId, t, winner, pool);
        if (pool > paid) _credit(taskId, t.sponsor, pool - paid, PayoutKind.Refund);
        emit TaskFinalized(taskId, winner, t.bestAccuracyBps, pool);
    }

    /// @notice Returns the stake of a node that was still unscored when its task was finalized.
    /// @param nodeId A pending node of a finalized task, authored by the caller.
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

    /// @notice Returns the stake of a commitment never revealed before its task was finalized.
    /// @param commitment The caller's commitment.
    function reclaimCommitment(bytes32 commitment) external {
        bytes32 key = _commitmentKey(msg.sender, commitment);
        Commitment memory cm = _commitments[key];
        if (cm.author != msg.sender) revert NotAuthor(msg.sender);
        Task storage t = _tasks[cm.taskId];
        if (!t.finalized) revert TaskNotFinalized(cm.taskId);
        if (t.submissionStake == 0) revert NothingToReclaim();
        delete _commitments[key];
        _credit(cm.taskId, msg.sender, t.submissionStake, PayoutKind.Stake);
    }

    /// @notice Sends the caller everything credited to it. Reverts when nothing is owed.
    function withdraw() external nonReentrant {
        uint256 amount = pendingWithdrawals[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        pendingWithdrawals[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    // ─────────────────────────────── views ───────────────────────────────

    /// @notice The task with every stored field (a zero sponsor means no such task).
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _tasks[taskId];
    }

    /// @notice The node with every stored field (a zero author means no such node).
    function getNode(uint256 nodeId) external view returns (Node memory) {
        return _nodes[nodeId];
    }

    /// @notice Several nodes in one call, for clients that draw a whole tree (a zero author means
    ///         no such node).
    /// @param nodeIds At most MAX_VIEW ids.
    function getNodes(uint256[] calldata nodeIds) external view returns (Node[] memory nodes) {
        if (nodeIds.length > MAX_VIEW) revert BatchSize(nodeIds.length, MAX_VIEW);
        nodes = new Node[](nodeIds.length);
        for (uint256 i = 0; i < nodeIds.length; ++i) {
            nodes[i] = _nodes[nodeIds[i]];
        }
    }

    /// @notice The published dataset (a zero publisher means no such dataset).
    function getDataset(uint256 datasetId) external view returns (Dataset memory) {
        return _datasets[datasetId];
    }

    /// @notice The commitment not yet revealed or reclaimed (a zero author means none).
    function getCommitment(address author, bytes32 commitment) external view returns (Commitment memory) {
        return _commitments[_commitmentKey(author, commitment)];
    }

    /// @notice How many tasks, nodes and datasets exist; ids run from 1 to these.
    function counts() external view returns (uint256 tasks, uint256 nodes, uint256 datasets) {
        Counters memory c = _counters;
        return (c.tasks, c.nodes, c.datasets);
    }

    // ────────────────────────────── internals ────────────────────────────

    /// @dev kind 0: tasks, 1: nodes, 2: datasets. One packed slot for all three counters.
    ///      Dataset ids fit a node's uint24 field.
    function _nextId(uint256 kind) private returns (uint256 id) {
        Counters storage c = _counters;
        if (kind == 0) id = ++c.tasks;
        else if (kind == 1) id = ++c.nodes;
        else id = ++c.datasets;
        if (id == (kind == 2 ? type(uint24).max : type(uint32).max)) revert TooManyItems();
    }

    function _commitmentKey(address author, bytes32 commitment) private pure returns (bytes32) {
        return keccak256(abi.encode(author, commitment));
    }

    /// @dev One more node awaits the oracle (task slot 0, already read by the caller).
    function _addPending(Task storage t) private {
        if (t.pendingNodes == type(uint24).max) revert TooManyItems();
        ++t.pendingNodes;
    }

    function _unfinalizedTask(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.deadline == 0) revert UnknownTask(taskId);
        if (t.finalized) revert TaskIsFinalized(taskId);
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
            if (n.datasetId != 0 || n.parentId == 0 || _datasets[s.datasetId].taskId != taskId) {
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
        n.status = NodeStatus.Scored;
        n.accuracyBps = acc;
        n.verifiedOps = verifiedOps;
        emit NodeScored(taskId, id, acc, verifiedOps);

        if (worse) {
            batch.forfeited += batch.stake;
            batch.penalised[batch.penalisedCount++] = n.author;
            emit StakeForfeited(taskId, id, batch.stake);
        } else if (batch.stake != 0) {
            _credit(taskId, n.author, batch.stake, PayoutKind.Stake);
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
        if (count == 0) return;
        int256[] memory deltas = new int256[](count);
        for (uint256 i = 0; i < count; ++i) {
            deltas[i] = delta;
        }
        assembly ("memory-safe") {
            mstore(accounts, count)
        }
        reputation.adjust(accounts, deltas);
    }

    /// @dev Walks winner → architecture (at most MAX_DEPTH nodes), then credits the data
    ///      share by each node's gain over the best accuracy already reached above it on the
    ///      path, the compute share by verified operations and the expertise share to the
    ///      architect. Floor division; returns what was paid. Reputation goes once per task to
    ///      each account other than the sponsor that the path paid at least MIN_REPUTATION_PAYOUT.
    function _payPath(uint256 taskId, Task storage t, uint256 winner, uint256 pool) private returns (uint256) {
        (uint256[] memory path, uint256[] memory gains, uint256 len) = _walkPath(winner);
        Payout memory p = Payout({
            taskId: taskId,
            sponsor: t.sponsor,
            dataPool: pool * t.dataShareBps / BPS,
            computePool: pool * t.computeShareBps / BPS,
            totalGain: 0,
            totalOps: 0,
            paid: 0,
            paidTo: new address[](2 * len),
            paidAmount: new uint256[](2 * len),
            paidCount: 0
        });
        // path[len - 1] is the architecture; path[0 .. len - 2] are trained nodes.
        for (uint256 i = 0; i + 1 < len; ++i) {
            p.totalGain += gains[i];
            p.totalOps += _nodes[path[i]].verifiedOps;
        }
        for (uint256 i = 0; i + 1 < len; ++i) {
            _payTrainedNode(p, _nodes[path[i]], gains[i]);
        }
        uint256 expertise = pool * t.expertiseShareBps / BPS;
        if (expertise != 0) _pay(p, _nodes[path[len - 1]].author, expertise, PayoutKind.Expertise);
        _rewardReputation(p);
        return p.paid;
    }

    /// @dev The winner's ancestry, winner first, with each node's gain over the best accuracy
    ///      on the path above it (0 for the architecture, and for any node that only wins back
    ///      what an ancestor already had: a dip and its recovery gain nothing).
    function _walkPath(uint256 winner)
        private
        view
        returns (uint256[] memory path, uint256[] memory gains, uint256 len)
    {
        path = new uint256[](MAX_DEPTH);
        gains = new uint256[](MAX_DEPTH);
        uint256[] memory accs = new uint256[](MAX_DEPTH);
        for (uint256 id = winner; id != 0; id = _nodes[id].parentId) {
            accs[len] = _nodes[id].accuracyBps;
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

    function _payTrainedNode(Payout memory p, Node storage n, uint256 gain) private {
        if (gain != 0) {
            address provider = n.datasetId == 0 ? n.author : _datasets[n.datasetId].publisher;
            _pay(p, provider, p.dataPool * gain / p.totalGain, PayoutKind.Data);
        }
        uint256 ops = n.verifiedOps;
        if (ops != 0) _pay(p, n.author, p.computePool * ops / p.totalOps, PayoutKind.Compute);
    }

    function _pay(Payout memory p, address account, uint256 amount, PayoutKind kind) private {
        if (amount == 0) return;
        _credit(p.taskId, account, amount, kind);
        p.paid += amount;
        uint256 i;
        while (i < p.paidCount && p.paidTo[i] != account) ++i;
        if (i == p.paidCount) p.paidTo[p.paidCount++] = account;
        p.paidAmount[i] += amount;
    }

    /// @dev REP_PAID once to each distinct account the path paid at least MIN_REPUTATION_PAYOUT,
    ///      the sponsor excepted: paying oneself, or dust, earns no reputation.
    function _rewardReputation(Payout memory p) private {
        address[] memory earned = new address[](p.paidCount);
        uint256 count;
        for (uint256 i = 0; i < p.paidCount; ++i) {
            if (p.paidTo[i] != p.sponsor && p.paidAmount[i] >= MIN_REPUTATION_PAYOUT) earned[count++] = p.paidTo[i];
        }
        _adjustReputation(earned, count, REP_PAID);
    }
}
