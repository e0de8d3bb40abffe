// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IReputation} from "./IReputation.sol";

/// @title IBountyTree
/// @notice Escrowed bounties for models trained on private data. A sponsor escrows a bounty for
///         a model that reaches a target accuracy on a validation set only the sponsor holds.
///         Every contribution is a node in the task's tree: architectures at depth 1 (their CID
///         is a model spec), trained weights below. An oracle scores nodes against the
///         sponsor's private validation set; when a node reaches the target (or the deadline
///         passes) the path from the architecture to the best node is paid: data by accuracy
///         gained, compute by verified operations, expertise to the architect. Every payment is
///         credited and pulled with {withdraw}.
///
///         Conventions: ids start at 1 (node id 0 is "the task itself", parent of every
///         architecture); accuracies are basis points (0..10000); a CID on-chain is the bytes32
///         SHA-256 digest of a CIDv0.
///
///         Reject reasons, the uint8 codes {rejectNodes} records (bountytree/reasons.py mirrors
///         them; a test checks the two agree):
///         1 missing: the node's files never reached the store within the oracle's fetch timeout.
///         2 not-safetensors: the weights are not a safetensors file of float32 tensors.
///         3 shape-mismatch: the tensors' names or shapes differ from the spec's.
///         4 not-finite: a weight, or an output on the task's inputs, is NaN or infinite.
///         5 too-large: the file exceeds the size the spec allows.
///         6 invalid-spec: the architecture's spec is not a valid whitelisted model spec.
///         7 parent-rejected: the node's parent was rejected (its stake is returned: never judged).
///         8 corrupt: the node's files made a check fail in a way nobody foresaw.
///         9 copy: equal to its parent, or closer to another earlier node than to its parent.
///         10 not-initial: an architecture whose weights are not its spec's seeded initialisation.
///         11 replay-mismatch: training on the declared published dataset does not reproduce
///            the weights.
///         12 unfit-spec: the spec does not fit the task's features and classes.
///         13 too-costly: replaying its training would exceed the oracle's budget.
///         14 logit-range: logits out of the fixed-point range on the task's inputs (weights
///            whose logits could overflow the oracle's fixed-point encoding).
///         15 unconfirmed: in a private task, one custodian found a fault it may see alone (in
///            its own share of a trained node's rows, or a file its store missed) and the other
///            found none; nobody else can tell which is right, so the node was never judged by
///            both (its stake is returned, as for 7).
///         16 too-slow: in a private task, a custodian could not train or score the node within
///            its session budget twice, the dealer not to blame (its stake is returned, as for 7).
/// @dev Implemented by BountyTree; roles (ORACLE_ROLE, DEFAULT_ADMIN_ROLE) are OpenZeppelin's
///      AccessControl.
interface IBountyTree {
    // ─────────────────────────────── types ───────────────────────────────

    /// @notice Where a node stands. Pending is 0 so that creating a node never writes its score
    ///         slot for nothing.
    enum NodeStatus {
        Pending, // submitted, awaiting the oracle
        Scored, // accuracy recorded
        Rejected, // failed a check; its stake was forfeited to the pool
        Reclaimed // still pending at finalize; its author took the stake back
    }

    /// @notice What a credit pays for, as {PayoutCredited} reports it.
    enum PayoutKind {
        Data, // a new task best's raise, to the data's provider
        Compute, // a new best's raise, to the trainers of the replayed training it grew from
        Expertise, // a new task best's raise, to the architect of its architecture
        Refund, // what the path could not be paid, back to the sponsor
        Stake, // a stake returned
        Bond, // an audit bond returned to the sponsor
        Burned // credited to address(0), which nobody can withdraw: a forfeited bond, what the
        // path was not paid beyond the sponsor's bounty, the fees of nodes left pending and of
        // commitments never revealed, the path's reputation levy
    }

    /// @notice The audit bond of a task.
    enum BondState {
        None, // the task was created without a bond
        Held, // escrowed until the validation file is published or the audit window closes
        Returned, // credited back to the sponsor
        Forfeited // burned (credited to address(0)): not published in time, or work left unscored
    }

    /// @notice Who holds a task's nodes: the oracle (a public task), or a custody contract (a
    ///         private one, created so: no node is revealed until its custody registers).
    enum Privacy {
        Public, // scored by ORACLE_ROLE; never turns private
        AwaitingCustody, // created private: takes no commitment yet ({AwaitingCustody})
        Custodied // private, its custody registered ({custodyOf}), which alone scores it
    }

    /// @notice A task, as {getTask} returns it; its storage layout, slot by slot.
    /// @dev Slot 0 is everything a commitment or reveal reads and writes (one slot per
    ///      submission); slot 4 everything scoring and finalize write; slot 5 is touched by
    ///      auditable tasks, the post-finalize calls and a scoring batch that sets a new best by
    ///      training (the bond is uint80 so that the compute weights' sum fits there); slots 6 and 7
    ///      only when something off the winning path waits for a claim. Amounts of slot 0 are uint64 (up to
    ///      18.4 ETH each for stake and fee), so that the open-commitment count fits beside them
    ///      and a commitment writes no second slot; ids uint32; the deadline uint32 (the year
    ///      2106), other times uint40.
    struct Task {
        // slot 0 — read by every submission
        uint64 submissionStake; // wei each commitment escrows, returned when scored
        uint64 scoringFee; // wei each node pays into the pool when scored or rejected (burned if never)
        uint32 deadline; // unix time after which the task takes no new commitment (brought forward
            // to REVEAL_WINDOW after the moment the target is reached)
        uint16 maxSubmissions; // commitments per account; 0 = unlimited
        uint24 submissions; // revealed commitments: nodes and datasets
        uint24 pendingNodes; // nodes submitted and neither scored nor rejected
        uint24 openCommitments; // commitments neither revealed nor reclaimed: finalize waits for
            // them until REVEAL_WINDOW after the deadline
        bool finalized;
        // slot 1 — read by finalize
        address sponsor;
        uint96 bounty; // the sponsor's escrow for the pool (the audit bond is apart)
        // slot 2
        bytes32 specCid; // the task description (bountytree/task@1)
        // slot 3
        bytes32 validationCommitment; // sha256(abi.encodePacked(salt, validation file's CID digest))
        // slot 4 — written by scoring and finalize
        uint32 bestNodeId; // best scored node so far (ties: lowest id); 0 until one is scored
        uint16 bestAccuracyBps;
        uint32 winnerNodeId; // set at finalize: the best node then, 0 if none was scored
        uint96 forfeited; // stakes forfeited to the pool
        uint16 targetAccuracyBps; // accuracy that makes the task finalizable before its deadline
        uint16 dataShareBps; // share of the pool for accuracy gained
        uint16 computeShareBps; // share for verified operations
        uint16 expertiseShareBps; // share for the architect
        BondState bondState;
        Privacy privacy; // set at creation; a private task's moves once, to Custodied
            // ({markCustodied}), and only then takes nodes
        // slot 5 — auditable tasks, what comes after finalize, the dataset count, and what new
        // bests set (written by a scoring batch that sets one by training)
        uint80 auditBond; // wei the sponsor escrowed to publish the validation file after finalize
            // (at most 1.2 million ETH)
        uint40 auditWindowEnd; // while a bond is held after finalize: the last moment to publish
        uint16 testAccuracyBps; // the winner's accuracy on the sponsor's held-out test set
        bool testScored; // testAccuracyBps is recorded
        bool validationPublished; // the sponsor opened the validation commitment
        uint24 datasets; // datasets published to the task; their ids run from 1 to this
        uint16 raisedBps; // the sum of every node's raiseBps: what the data and expertise shares
            // are split by (written by a scoring batch that sets a new best by training)
        uint64 computeWeight; // the sum of every node's computeWeight (written by the same
            // batches); at most raisedBps × WEIGHT_PER_BPS
        // slots 6 and 7 — written at finalize only when a raise or a compute weight lies off the
        // winning path, then by each claim (and slot 6's last field by a private task's custody)
        uint64 unclaimedWeight; // the compute weights off the path not claimed yet
        uint16 unclaimedRaiseBps; // the raises off the path not claimed yet
        uint96 raiseReserve; // wei of the data and expertise shares kept for raises off the path
        bool validationUnread; // the task's scorer says the sponsor's validation rows cannot be had
            // ({markValidationUnread}); read at finalize
        // slot 7
        uint96 computeReserve; // wei of the compute share kept for compute weights off the path
    }

    /// @notice A node of a task's tree. An architecture is the node with parentId 0 (its cid is
    ///         its spec); a trained node's cid is its weights.
    /// @dev A submission writes slots 0 and 1 only; scoring writes slot 2 (and slot 0's datasetId
    ///      when the oracle re-attributes the data).
    struct Node {
        // slot 0 — the tree
        address author;
        uint32 taskId;
        uint32 parentId;
        uint8 depth; // 1 for an architecture
        uint24 datasetId; // 0: the author's private data; else a dataset published to the task
        // slot 1
        bytes32 cid;
        // slot 2 — the score
        NodeStatus status;
        uint16 accuracyBps;
        uint64 verifiedOps; // training operations the oracle reproduced by replay
        uint16 raiseBps; // a trained node that set a new task best: its accuracy less the best
            // before it (what it added to the task, whoever it copied); else 0
        uint64 computeWeight; // what its replayed training earns of the compute share: for each
            // new best that is it or grew from it, that best's raise × WEIGHT_PER_BPS × its
            // verifiedOps / the verifiedOps on that best's path
        bool claimed; // off the winning path, its raise and compute weight were paid by claim
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

    /// @notice A dataset published to one task; the data share of nodes trained on it goes to
    ///         its publisher.
    struct Dataset {
        // slot 0
        address publisher;
        // slot 1
        bytes32 cid;
    }

    /// @notice A commitment not yet revealed: its author, the task its stake was paid into, and
    ///         the block it was made in (a reveal must come later).
    struct Commitment {
        // slot 0, the only one: a commitment costs one new slot, and deleting it at the reveal
        // refunds part of that
        address author;
        uint32 taskId;
        uint64 blockNumber;
    }

    // ─────────────────────────────── events ──────────────────────────────

    /// @notice A bounty was posted.
    /// @param bounty The pool's escrow (msg.value less the audit bond).
    /// @param scoringFee Paid with every commitment; into the pool once its node is
    ///        scored or rejected (burned if never; an unrevealed commitment reclaims it).
    /// @param maxSubmissions Commitments allowed per account; 0 = unlimited.
    /// @param auditBond Escrowed until the sponsor publishes the validation file; 0 = not auditable.
    event TaskCreated(
        uint256 indexed taskId,
        address indexed sponsor,
        uint256 bounty,
        bytes32 specCid,
        bytes32 validationCommitment,
        uint16 targetAccuracyBps,
        uint64 deadline,
        uint256 submissionStake,
        uint256 scoringFee,
        uint16 maxSubmissions,
        uint256 auditBond
    );

    /// @notice An architecture was proposed as the depth-1 node `nodeId`.
    event ArchitectureProposed(uint256 indexed taskId, uint256 indexed nodeId, address indexed author, bytes32 cid);

    /// @notice A dataset was published to a task.
    event DatasetPublished(uint256 indexed taskId, uint256 indexed datasetId, address indexed publisher, bytes32 cid);

    /// @notice The first half of a submission: a stake (and fee) paid behind a hash.
    event SubmissionCommitted(uint256 indexed taskId, address indexed author, bytes32 commitment);

    /// @notice A trained node was revealed.
    event NodeSubmitted(
        uint256 indexed taskId,
        uint256 indexed nodeId,
        uint256 indexed parentId,
        address author,
        bytes32 cid,
        uint256 datasetId
    );

    /// @notice The oracle recorded a node's accuracy and verified operations.
    event NodeScored(uint256 indexed taskId, uint256 indexed nodeId, uint16 accuracyBps, uint64 verifiedOps);

    /// @notice The oracle's replay showed that a node declared as trained on private data was
    ///         trained on this published dataset; its data share goes to the dataset's publisher.
    event NodeAttributed(uint256 indexed taskId, uint256 indexed nodeId, uint256 datasetId);

    /// @notice The oracle rejected a node.
    /// @param reason One of the reject reason codes listed above (1..14).
    event NodeRejected(uint256 indexed taskId, uint256 indexed nodeId, uint8 reason);

    /// @notice A node's stake joined the task's pool (rejected, or scored below its parent).
    event StakeForfeited(uint256 indexed taskId, uint256 indexed nodeId, uint256 amount);

    /// @notice The task's best node reached the target: the task takes new commitments until
    ///         `deadline` (REVEAL_WINDOW from now, where the deadline was later) or until it is
    ///         finalized, which anyone may do from now on while no commitment is open; those made
    ///         in time may be revealed for REVEAL_WINDOW more, and finalize waits for them.
    event DeadlineBroughtForward(uint256 indexed taskId, uint256 deadline);

    /// @notice A task was settled.
    /// @param winnerNodeId The best scored node, 0 if none was scored.
    /// @param pool Bounty + forfeited stakes + the fees of nodes scored or rejected, all of it
    ///        credited (to the path, to the sponsor up to its bounty, the rest burned) or kept
    ///        for what {claim} pays off the winning path.
    event TaskFinalized(uint256 indexed taskId, uint256 winnerNodeId, uint16 accuracyBps, uint256 pool);

    /// @notice The task is private: PrivateCustody scores it, the oracle's role no longer can.
    event TaskCustodied(uint256 indexed taskId, address custody);

    /// @notice A node off the winning path was paid what it holds: its raise's part of the data
    ///         and expertise shares, its compute weight's part of the compute share (`amount`,
    ///         levies included; PayoutCredited says to whom).
    event Claimed(uint256 indexed taskId, uint256 indexed nodeId, uint256 amount);

    /// @notice Wei credited to `account`, to be pulled with {withdraw}.
    /// @param kind A PayoutKind.
    event PayoutCredited(uint256 indexed taskId, address indexed account, uint256 amount, uint8 kind);

    /// @notice `account` pulled everything credited to it.
    event Withdrawn(address indexed account, uint256 amount);

    /// @notice The sponsor opened the validation commitment: anyone holding the file whose CIDv0
    ///         digest is `fileCid` can now check every score.
    event ValidationPublished(uint256 indexed taskId, bytes32 fileCid, bytes32 salt);

    /// @notice The bond was burned (a {PayoutCredited} of kind Burned): the sponsor did not
    ///         publish within the audit window, or the task ended with work its validator never
    ///         scored.
    event BondForfeited(uint256 indexed taskId, uint256 amount);

    /// @notice The oracle recorded the winner's accuracy on the sponsor's held-out test set.
    event TestScoreRecorded(uint256 indexed taskId, uint256 indexed nodeId, uint16 accuracyBps);

    // ─────────────────────────────── errors ──────────────────────────────

    /// @notice A task needs a bounty: msg.value must exceed the audit bond.
    error NoBounty();
    /// @notice An amount does not fit its storage field (uint64, about 18.4 ETH, for stake and fee; uint96 else).
    error AmountTooLarge(uint256 amount);
    /// @notice A CID is zero.
    error EmptyCid();
    /// @notice A commitment is zero.
    error EmptyCommitment();
    /// @notice A deadline must lie in the future.
    error DeadlineNotInFuture(uint256 deadline, uint256 now_);
    /// @notice A deadline must fit uint32 (the year 2106).
    error DeadlineTooFar(uint256 deadline);
    /// @notice The target must be in 1..10000.
    error TargetOutOfRange(uint256 targetAccuracyBps);
    /// @notice The data, compute and expertise shares must sum to 10000.
    error SharesMustSumTo10000(uint256 sum);
    /// @notice No task has this id.
    error UnknownTask(uint256 taskId);
    /// @notice The task is finalized and takes no more nodes, scores or rejections.
    error TaskIsFinalized(uint256 taskId);
    /// @notice The task's deadline has passed: it takes no new nodes.
    error DeadlinePassed(uint256 taskId, uint256 deadline);
    /// @notice msg.value must be exactly the task's stake plus its scoring fee (`expected`).
    error WrongStake(uint256 expected, uint256 sent);
    /// @notice The account already made `maxSubmissions` commitments in this task.
    error SubmissionCapReached(uint256 taskId, address account, uint256 maxSubmissions);
    /// @notice The caller already has this commitment pending.
    error CommitmentExists(bytes32 commitment);
    /// @notice The caller has no such commitment (wrong arguments, or staked by another account).
    error UnknownCommitment(bytes32 commitment);
    /// @notice A commitment reveals only into the task its stake was paid into.
    error CommitmentNotInTask(bytes32 commitment, uint256 stakedIn);
    /// @notice A reveal must come in a later block than its commitment (made in `commitBlock`).
    error RevealTooEarly(uint256 commitBlock);
    /// @notice The parent is not a node of this task.
    error ParentNotInTask(uint256 parentId, uint256 taskId);
    /// @notice Nothing grows under a rejected node.
    error ParentRejected(uint256 parentId);
    /// @notice The path from the task would exceed MAX_DEPTH.
    error TreeTooDeep(uint256 maxDepth);
    /// @notice An architecture is not trained on anything: it names no dataset.
    error DatasetOnArchitecture(uint256 datasetId);
    /// @notice This content is already a dataset of the task, under `datasetId`.
    error DatasetExists(uint256 taskId, uint256 datasetId);
    /// @notice The dataset is not published to this task.
    error DatasetNotInTask(uint256 datasetId, uint256 taskId);
    /// @notice A batch is empty or larger than allowed.
    error BatchSize(uint256 size, uint256 max);
    /// @notice Node ids and reasons differ in length.
    error LengthMismatch();
    /// @notice The node is not in this task.
    error NodeNotInTask(uint256 nodeId, uint256 taskId);
    /// @notice The node is already scored, rejected or reclaimed.
    error NodeNotPending(uint256 nodeId);
    /// @notice An accuracy must be in 0..10000.
    error AccuracyOutOfRange(uint256 nodeId, uint256 accuracyBps);
    /// @notice Compute is paid only for training on published data.
    error ComputeOnPrivateData(uint256 nodeId);
    /// @notice A score may re-attribute only a privately trained node, to a dataset of its task.
    error BadAttribution(uint256 nodeId, uint256 datasetId);
    /// @notice A node is scored after its parent.
    error ParentNotScored(uint256 nodeId, uint256 parentId);
    /// @notice A reject reason must be non-zero.
    error InvalidReason(uint256 nodeId);
    /// @notice The task is neither at its target nor past its deadline.
    error NotFinalizable(uint256 taskId, uint256 deadline);
    /// @notice Nodes await the oracle: only the oracle may finalize before `openToAllAt`.
    error WorkPending(uint256 taskId, uint256 pendingNodes, uint256 openToAllAt);
    /// @notice {finalizeLeaving} saw another pending count than the task holds now.
    error PendingChanged(uint256 taskId, uint256 pendingNodes, uint256 pendingSeen);
    /// @notice The caller does not hold the role that scores this task (ORACLE_ROLE for a public
    ///         task, CUSTODY_ROLE for a custodied one).
    error NotScorer(uint256 taskId, address caller);
    /// @notice Only a task created with `privateModels` is held by a custody, and by one only: a
    ///         public task never turns private (that once raced the sponsor's second transaction,
    ///         and a stranger's node revealed in between kept the task public for good), and a
    ///         custodied task's custody is never replaced ({custodyOf}).
    error NotAwaitingCustody(uint256 taskId);
    /// @notice A private task takes no commitment until its custody is registered: a node
    ///         revealed before would have nobody to hold its weights as shares, and a commitment
    ///         that could not be revealed would lose its fee.
    error AwaitingCustody(uint256 taskId);
    /// @notice Commitments made in time may still be revealed: nobody may finalize before
    ///         `revealsCloseAt` (REVEAL_WINDOW after the deadline) unless they are all revealed.
    error RevealsOpen(uint256 taskId, uint256 openCommitments, uint256 revealsCloseAt);
    /// @notice Reveals close REVEAL_WINDOW after the deadline (`revealsCloseAt`).
    error RevealWindowClosed(uint256 taskId, uint256 revealsCloseAt);
    /// @notice The call needs a finalized task.
    error TaskNotFinalized(uint256 taskId);
    /// @notice Only the node's or commitment's author may reclaim its stake.
    error NotAuthor(address caller);
    /// @notice Only the task's sponsor may publish its validation file.
    error NotSponsor(address caller);
    /// @notice There is nothing to reclaim: the task asked no stake (and, for a commitment, no fee).
    error NothingToReclaim();
    /// @notice The node holds nothing off the winning path left to claim: no raise and no compute
    ///         weight, its task is not finalized, it was paid at finalize (it is on the winning
    ///         path) or claimed already.
    error NothingToClaim(uint256 nodeId);
    /// @notice Nothing is credited to the account.
    error NothingToWithdraw(address account);
    /// @notice Sending the account its credit failed.
    error TransferFailed(address account, uint256 amount);
    /// @notice An id or counter would overflow its storage field.
    error TooManyItems();
    /// @notice sha256(abi.encodePacked(salt, fileCid)) is not the task's validation commitment.
    error WrongOpening(uint256 taskId);
    /// @notice The validation file was already published.
    error ValidationAlreadyPublished(uint256 taskId);
    /// @notice The task holds no audit bond (none was posted, or it was returned or forfeited).
    error NoBondHeld(uint256 taskId);
    /// @notice The sponsor may still publish until `closesAt`.
    error AuditWindowOpen(uint256 taskId, uint256 closesAt);
    /// @notice The task was finalized without a scored node.
    error NoWinner(uint256 taskId);
    /// @notice The winner's test score is recorded once.
    error TestScoreAlreadyRecorded(uint256 taskId);

    // ───────────────────────────── lifecycle ─────────────────────────────

    /// @notice Posts a bounty for a model that reaches `targetAccuracyBps` on the sponsor's
    ///         private validation set. msg.value is the bounty plus `auditBond`.
    /// @param specCid Task description on IPFS (CIDv0 digest).
    /// @param validationCommitment sha256(abi.encodePacked(salt, fileCid)): `fileCid` is the
    ///        validation file's CIDv0 digest; the file and salt stay with the sponsor.
    /// @param targetAccuracyBps Accuracy that ends the task early, in 1..10000.
    /// @param deadline Unix time after which the task takes no new commitment and anyone may
    ///        finalize (once the reveals of open commitments are in, or REVEAL_WINDOW later).
    /// @param dataShareBps Share of the pool paid for accuracy gained on data.
    /// @param computeShareBps Share paid for verified training operations.
    /// @param expertiseShareBps Share paid to the architect of the winning path.
    /// @param submissionStake Wei each commitment escrows (returned when scored).
    /// @param scoringFee Wei each commitment pays, into the pool once its node is
    ///        scored or rejected (0 allowed): every score then costs something, so noise
    ///        mining does. Burned for a node never scored; an unrevealed commitment reclaims it.
    /// @param maxSubmissions Commitments per account; 0 = unlimited.
    /// @param auditBond Wei escrowed apart from the pool until the validation file is published
    ///        after finalize; 0 = not auditable.
    /// @param privateModels A private task ({Privacy}): it takes no commitment until the sponsor
    ///        registers its custody ({markCustodied}).
    /// @return taskId The new task's id.
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
    ) external payable returns (uint256 taskId);

    /// @notice First half of every submission (an architecture, a trained node, a dataset): pays
    ///         the stake and the scoring fee behind a hash that hides what will be revealed, so
    ///         nobody can copy it out of the mempool and be first with it. Both stay with the
    ///         commitment until it is revealed or reclaimed after finalize. Counts towards the
    ///         account's cap, and as open work: it may be revealed until REVEAL_WINDOW after the
    ///         deadline, and until then finalize waits for it (so nobody who is due to be paid can
    ///         finalize between a competitor's commitment and its reveal).
    /// @param taskId An open task.
    /// @param commitment For a node, keccak256(abi.encode(msg.sender, taskId, parentId, cid,
    ///        datasetId, salt)); for a dataset, keccak256(abi.encode(msg.sender, taskId, dataCid,
    ///        salt)). The two preimages differ in length, so neither opens as the other.
    function commitSubmission(uint256 taskId, bytes32 commitment) external payable;

    /// @notice Second half of a node's submission, in a later block than the commitment, by the
    ///         account that made it and into the task its stake was paid to, before the task is
    ///         finalized and at most REVEAL_WINDOW after its deadline. With parentId 0 the
    ///         node is an architecture (a depth-1 node whose cid is its model spec;
    ///         ArchitectureProposed), else a trained node under `parentId` (NodeSubmitted). The
    ///         stake stays escrowed in the task; the fee joins its pool once the oracle scores or
    ///         rejects the node (burned at finalize if it never does).
    /// @dev Architectures were once proposed in one transaction; a proposal copied from the
    ///      mempool and sent first took the expertise share, and the architect's own was then
    ///      rejected as the copy. A commitment hides the spec until a later block.
    /// @param taskId The task of the commitment.
    /// @param parentId 0 for an architecture, else the node training started from (same task,
    ///        not rejected).
    /// @param cid The spec of an architecture, the trained weights (safetensors) of a node.
    /// @param datasetId 0 for the author's own private data (always, for an architecture), else a
    ///        dataset published to this task.
    /// @param salt The secret that made the commitment unguessable.
    /// @return nodeId The new node's id.
    function revealSubmission(uint256 taskId, uint256 parentId, bytes32 cid, uint256 datasetId, bytes32 salt)
        external
        returns (uint256 nodeId);

    /// @notice Second half of publishing a dataset that anyone may train on for this task (the
    ///         data share of every node trained on it goes to the publisher). The commitment's fee
    ///         joins the task's pool at once, as the price of the oracle's replays against the
    ///         dataset; its stake is credited back. One dataset per content per task: the first
    ///         reveal of a CID holds it.
    /// @param taskId The task of the commitment, not finalized, at most REVEAL_WINDOW past its
    ///        deadline.
    /// @param dataCid The dataset file on IPFS.
    /// @param salt The secret that made the commitment unguessable.
    /// @return datasetId The dataset's id in this task (ids count from 1 in every task).
    function revealDataset(uint256 taskId, bytes32 dataCid, bytes32 salt) external returns (uint256 datasetId);

    /// @notice Records the oracle's scores (ORACLE_ROLE). Returns each node's stake, or forfeits
    ///         it to the task's pool when a trained node scores below its parent. The batch that
    ///         first brings the task's best to its target brings the deadline forward to
    ///         REVEAL_WINDOW from now (DeadlineBroughtForward), so that commitments, and the wait
    ///         for their reveals, end within a bounded time of the target.
    /// @dev Parents must be scored first (a batch ordered by id satisfies this).
    /// @param taskId The task every node belongs to.
    /// @param scores At most MAX_BATCH scores of pending nodes.
    function recordScores(uint256 taskId, Score[] calldata scores) external;

    /// @notice Rejects nodes (ORACLE_ROLE); their stakes join the task's pool and their authors
    ///         lose reputation, except a node rejected as PARENT_REJECTED (never judged on its
    ///         own), UNCONFIRMED (judged at fault by one custodian alone) or TOO_SLOW (a
    ///         custodian could not train or score it in its budget), whose stake is returned.
    /// @param taskId The task every node belongs to.
    /// @param nodeIds Pending nodes, at most MAX_BATCH.
    /// @param reasons A non-zero reject reason code per node (listed above).
    function rejectNodes(uint256 taskId, uint256[] calldata nodeIds, uint8[] calldata reasons) external;

    /// @notice Ends a task whose best node reached the target, or whose deadline has passed,
    ///         and credits the payouts along the path from the architecture to the winner
    ///         (best scored node; ties go to the lowest id): the data and expertise shares by the
    ///         raises of the new bests on it (each new best's part is its raise over the task's
    ///         raisedBps), the compute share by the compute weights on it (each raise's part of
    ///         the share, split among the replayed training on its path by operations: a node's
    ///         computeWeight over raisedBps × WEIGHT_PER_BPS); what nodes off the path hold is kept for
    ///         {claim}. Each credit is net of the reputation levy
    ///         (REPUTATION_LEVY_BPS, burned; a point per REPUTATION_POINT_PRICE of it goes to its
    ///         payee's reputation). What cannot be paid goes back to the
    ///         sponsor. Anyone may call it once the task is due and every submitted node is scored
    ///         or rejected, or FINALIZE_GRACE after the deadline, so that nobody cuts off work
    ///         submitted in time (the scorer leaves nodes it gave up on with {finalizeLeaving}).
    ///         Nobody, the scorer included, finalizes while
    ///         a commitment is open and its reveal window (REVEAL_WINDOW after the deadline) lasts:
    ///         work committed in time is never cut off before it could be revealed. A held bond is
    ///         burned if any node of a public task is left pending (work waited for the sponsor's
    ///         validator and was never scored); otherwise a task with a winner, or a private task
    ///         with nodes its custodians left (perhaps for validation shares that did not open),
    ///         opens its audit window, and one with neither (the file decided nothing) returns
    ///         the bond at once. In every case the
    ///         sponsor gets back at most its bounty: what the path was not paid beyond it
    ///         (strangers' forfeited stakes and fees) is burned, and so are the fees of nodes left
    ///         pending.
    /// @param taskId An unfinalized task.
    function finalize(uint256 taskId) external;

    /// @notice Finalizes a due task leaving nodes unscored (the task's scorer only: ORACLE_ROLE,
    ///         CUSTODY_ROLE for a custodied task), once the scorer has given up on them (their
    ///         files cannot be fetched, their session keeps failing). Otherwise as {finalize},
    ///         which leaves nothing pending before FINALIZE_GRACE.
    /// @dev `pendingSeen` is the count of pending nodes the scorer decided on: a node revealed
    ///      between that decision and this transaction (a commitment and its reveal mined in the
    ///      blocks between) would otherwise be cut off unscored, its fee burned. Found by the
    ///      attacker review of the reveal window; it once was finalize's exemption for the oracle.
    /// @param taskId An unfinalized, due task.
    /// @param pendingSeen Exactly the task's pendingNodes now, else {PendingChanged}.
    function finalizeLeaving(uint256 taskId, uint256 pendingSeen) external;

    /// @notice Registers the custody of a private task (CUSTODY_ROLE: PrivateCustody, once the
    ///         custody is ready and holds the validation rows): the task then takes commitments, and its nodes' scores
    ///         and rejections come from the calling contract alone ({custodyOf}).
    /// @param taskId An unfinalized task created with `privateModels`, its custody not yet
    ///        registered (so it has no commitment and no node: {AwaitingCustody}), else
    ///        {NotAwaitingCustody}.
    function markCustodied(uint256 taskId) external;

    /// @notice The task's scorer says whether the sponsor's validation rows cannot be had: the
    ///         oracle, for a public task whose sessions with the sponsor's validator have failed
    ///         for an hour (it is away, or refuses them); a private task's custody, while one of
    ///         its custodians cannot read its share (a file never served, or one that does not
    ///         open). A task finalized with nodes pending burns its bond only while it is set:
    ///         its nodes waited for the sponsor. Nodes left pending otherwise (an oracle that was
    ///         away, a stranger's files that never came) hold the bond for the audit window.
    ///         Taken back (`unread` false) once no pending node waits on the rows: by the
    ///         oracle, whatever waits for its own files; by a custodian, once the nodes pending
    ///         when it read its share again are done or given up. A busy task is never without pending nodes, so a word kept until none
    ///         was pending stayed, and burned an honest sponsor's bond for a node left for
    ///         another reason; rows served at the last moment still owe their nodes' sessions.
    /// @param taskId An unfinalized task this caller scores ({NotScorer} otherwise).
    function markValidationUnread(uint256 taskId, bool unread) external;

    /// @notice The custody contract that alone scores a private task (zero for a public task).
    function custodyOf(uint256 taskId) external view returns (address);

    /// @notice Returns the stake of a node still unscored when its task was finalized (its fee
    ///         was burned at finalize: it bought no score, and a submitter whose node the oracle
    ///         had not rejected yet must not get it back).
    /// @param nodeId A pending node of a finalized task, authored by the caller.
    function reclaimStake(uint256 nodeId) external;

    /// @notice Returns the stake of a commitment never revealed before its task was finalized, and
    ///         burns its fee. Finalize never cuts a commitment off (it waits for every reveal up to
    ///         REVEAL_WINDOW after the deadline), so an unrevealed commitment was left by its
    ///         author; one that cost nothing in the end would be a free option on content someone
    ///         else may reveal (a guessable architecture design, committed in advance and revealed
    ///         only when a real architect's reveal shows it).
    /// @param commitment The caller's commitment.
    function reclaimCommitment(bytes32 commitment) external;

    /// @notice Pays a node off the winning path what it holds, once: a new best its raise's part
    ///         of the data and expertise shares (data to its data's provider, expertise to the
    ///         architect of its architecture), a node with a compute weight its part of the compute
    ///         share (to its author), each out of what finalize kept (its part of what is left, so
    ///         the last claim takes the rest to the wei) and net of the reputation levy. Anyone may
    ///         call it; it credits only those. So a copy in any disguise that sets a new best is
    ///         paid its own raise only, and what it copied, on the winning path or off it, keeps
    ///         its raise and the compute it grew from.
    /// @param nodeId A node of a finalized task, off its winning path, with a raise or a compute
    ///        weight, not claimed.
    function claim(uint256 nodeId) external;

    /// @notice Opens the validation commitment of a finalized task (the sponsor only): anyone
    ///         can then fetch the file by its CID and re-score every node. Within AUDIT_WINDOW of
    ///         finalize it returns a held bond to the sponsor; later it still publishes, but the
    ///         bond stays forfeit.
    /// @param taskId A finalized task of the caller.
    /// @param fileCid The validation file's CIDv0 digest.
    /// @param salt The salt of the commitment.
    function publishValidation(uint256 taskId, bytes32 fileCid, bytes32 salt) external;

    /// @notice After AUDIT_WINDOW without a publication, anyone burns a task's held bond. Not
    ///         paid to the path: the sponsor may control any account on it, so only a bond that
    ///         nobody receives makes withholding the file cost the sponsor.
    /// @param taskId A finalized task holding a bond.
    function forfeitBond(uint256 taskId) external;

    /// @notice Records the winner's accuracy on the sponsor's held-out test set (ORACLE_ROLE),
    ///         once, after finalize. Informative only: it changes no payout.
    /// @param taskId A finalized task with a winner.
    /// @param accuracyBps In 0..10000.
    function recordTestScore(uint256 taskId, uint16 accuracyBps) external;

    /// @notice Sends the caller everything credited to it. Reverts when nothing is owed.
    function withdraw() external;

    // ─────────────────────────────── views ───────────────────────────────

    /// @notice The task with every stored field (a zero deadline means no such task).
    function getTask(uint256 taskId) external view returns (Task memory);

    /// @notice The node with every stored field (a zero author means no such node).
    function getNode(uint256 nodeId) external view returns (Node memory);

    /// @notice Several nodes in one call, for clients that draw a whole tree (a zero author means
    ///         no such node).
    /// @param nodeIds At most MAX_VIEW ids.
    function getNodes(uint256[] calldata nodeIds) external view returns (Node[] memory nodes);

    /// @notice A dataset published to a task (a zero publisher means no such dataset).
    function getDataset(uint256 taskId, uint256 datasetId) external view returns (Dataset memory);

    /// @notice The id a dataset's CID holds in a task, 0 if it was never published there.
    function datasetIdOf(uint256 taskId, bytes32 cid) external view returns (uint256);

    /// @notice The commitment not yet revealed or reclaimed (a zero author means none).
    function getCommitment(address author, bytes32 commitment) external view returns (Commitment memory);

    /// @notice How many tasks and nodes exist; ids run from 1 to these (a task's datasets are
    ///         counted in its `datasets` field).
    function counts() external view returns (uint256 tasks, uint256 nodes);

    /// @notice Commitments `account` made in a task with a cap (not counted, so 0,
    ///         where the task has none).
    function submissionsBy(uint256 taskId, address account) external view returns (uint256);

    /// @notice Wei credited to `account` and not yet withdrawn.
    function pendingWithdrawals(address account) external view returns (uint256);

    /// @notice The reputation registry this marketplace writes.
    function reputation() external view returns (IReputation);

    // ───────────────────────────── constants ─────────────────────────────

    /// @notice Role allowed to record scores and test scores and to reject nodes of public tasks.
    function ORACLE_ROLE() external view returns (bytes32);

    /// @notice Role that makes a task private ({markCustodied}) and alone scores and rejects its
    ///         nodes: granted to PrivateCustody, which uses it for records both custodians attest.
    function CUSTODY_ROLE() external view returns (bytes32);
    /// @notice Longest path from the task to a node; bounds the cost of {finalize}.
    function MAX_DEPTH() external view returns (uint256);
    /// @notice Most nodes {recordScores} or {rejectNodes} take in one call.
    function MAX_BATCH() external view returns (uint256);
    /// @notice The reject reason of a node whose parent was rejected: the node was never judged
    ///         on its own, so {rejectNodes} returns its stake and takes no reputation.
    function PARENT_REJECTED() external view returns (uint8);
    /// @notice The reject reason of a private node that one custodian found at fault where only
    ///         it can see (RejectReasons.seenAlone) while the other found nothing: a fault nobody
    ///         else can check, so {rejectNodes} returns its stake and takes no reputation (a
    ///         custodian that rejects honest nodes cannot have their stakes forfeited).
    function UNCONFIRMED() external view returns (uint8);
    /// @notice Most nodes {getNodes} returns in one call.
    function MAX_VIEW() external view returns (uint256);
    /// @notice Reputation lost by a node that scores below its parent (what the levy on 1 ETH of
    ///         work paid earns).
    function REP_WORSE() external view returns (int256);
    /// @notice Reputation lost by a node the oracle rejects (what the levy on 2 ETH of work paid
    ///         earns).
    function REP_REJECTED() external view returns (int256);
    /// @notice The reputation levy, in basis points of each credit the winning path pays an
    ///         account other than the sponsor: burned, and the account earns a point per
    ///         REPUTATION_POINT_PRICE of its levies in the task. Paying oneself earns nothing; a
    ///         farmer who controls every account pays at least REPUTATION_POINT_PRICE per point,
    ///         irrecoverably.
    function REPUTATION_LEVY_BPS() external view returns (uint256);
    /// @notice Wei of levy burned per reputation point: what a point costs, whoever earns it.
    function REPUTATION_POINT_PRICE() external view returns (uint256);
    /// @notice Compute weight per basis point of raise: a raise of r bps gives the replayed
    ///         training on its path r × WEIGHT_PER_BPS of weight, split by operations.
    function WEIGHT_PER_BPS() external view returns (uint256);
    /// @notice How long after the deadline a task with unscored nodes may be finalized by anyone
    ///         but the oracle (the oracle may finalize as soon as the task is due).
    function FINALIZE_GRACE() external view returns (uint256);
    /// @notice How long after finalize the sponsor of a task with a bond has to publish the
    ///         validation file before anyone may forfeit the bond.
    function AUDIT_WINDOW() external view returns (uint256);
    /// @notice How long a commitment may be revealed after its task's deadline, and how long
    ///         after reaching the target a task still takes commitments; finalize waits for open
    ///         commitments until REVEAL_WINDOW after the deadline.
    function REVEAL_WINDOW() external view returns (uint256);
}
