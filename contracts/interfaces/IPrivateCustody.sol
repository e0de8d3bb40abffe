// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IPrivateCustody
/// @notice Who holds a private task's models, and how the winner reaches the sponsor.
///
///         In a private task no trained node's weights exist in the clear: two custodians each
///         hold one additive secret share of every node, and a dealer deals the correlated
///         randomness they compute with (docs/private-models.md). The sponsor names the three
///         and its X25519 public key before the task takes any submission, and pays a custody
///         fee; each of the three accepts by staking. A custodian records a commitment to its
///         share of each node it holds. Once the task is finalized with a winner, each
///         custodian seals its share of the winner to the sponsor's key and posts the sealed
///         file's CID; when both have, all three are paid (fee in thirds) and their stakes
///         returned. A custodian that has not delivered by the hand-over deadline loses its
///         stake and its third of the fee to the sponsor.
///
///         The custodians also score their task's nodes (the Ladder computed on shares reveals
///         only the record) and each attests the record; when both attest the same, this
///         contract records it on BountyTree. It holds BountyTree's CUSTODY_ROLE; a task is
///         created private there, and once its custody here is ready (three parties staked, the
///         validation rows shared) this contract becomes its custody
///         ({IBountyTree-markCustodied}), so that its nodes are scored through this contract
///         alone: no single custodian, nor the oracle's account, decides a private node's score.
///
///         Escrow, per task: the fee and the stakes accepted are exactly what {settle} (or the
///         second hand-over) credits; nothing of one task pays another.
interface IPrivateCustody {
    // ─────────────────────────────── types ───────────────────────────────

    /// @notice A task's custody; its storage layout, slot by slot.
    struct Custody {
        // slot 0
        address custodian0;
        uint96 stake; // wei each of the three stakes to accept
        // slot 1
        address custodian1;
        uint96 fee; // wei the sponsor paid, split in thirds at settlement
        // slot 2
        address dealer;
        uint32 handoverWindow; // seconds the custodians have once finalization is noted
        uint8 accepted; // bit i: party i staked (0, 1: custodians; 2: dealer)
        uint8 delivered; // bit i: custodian i posted its hand-over
        bool settled;
        uint40 finalizedAt; // when this contract first saw the task finalized (0: not yet)
        // slot 3
        bytes32 sponsorKey; // the sponsor's X25519 public key, for the hand-over
        // slots 4, 5
        bytes32 sealed0; // CID digest of custodian 0's sealed share of the winner
        bytes32 sealed1;
        // slots 6, 7, 8: each party's X25519 public key. Data owners seal a custodian's share of
        // rows to its key; the parties' links to each other authenticate with all three.
        bytes32 key0;
        bytes32 key1;
        bytes32 key2; // the dealer's
    }

    /// @notice What a credit pays, as {Credited} reports it.
    enum CreditKind {
        Fee, // a third of the custody fee, for custody delivered
        Stake, // a stake returned
        Forfeit, // a stake and a fee third, to the sponsor: a custodian did not deliver
        Refund, // the fee back to the sponsor: custody never started
        Unserved // the dealer's fee third back to the sponsor: the task was finalized leaving a
            // node both custodians said waits for the dealer ({reportDealer})
    }

    // ─────────────────────────────── events ──────────────────────────────

    event Approved(address indexed account, bool approved);
    /// @notice The hand-over window opened: the task was seen finalized at `at`.
    event FinalizationNoted(uint256 indexed taskId, uint256 at);
    event CustodyRegistered(
        uint256 indexed taskId,
        address custodian0,
        address custodian1,
        address dealer,
        bytes32 sponsorKey,
        uint256 stake,
        uint256 fee,
        uint256 handoverWindow
    );
    /// @param party 0, 1: custodians; 2: the dealer.
    /// @param sealingKey The party's X25519 public key: what a custodian is sent is sealed to it,
    ///        and every party's session links authenticate with it.
    event CustodyAccepted(uint256 indexed taskId, address indexed account, uint8 party, bytes32 sealingKey);
    /// @notice Custodian `index` committed to its share of a node: sha256 over a tag, a salt and
    ///         the share (bountytree/private/shares.py).
    event ShareCommitted(uint256 indexed taskId, uint256 indexed nodeId, uint8 index, bytes32 commitment);
    event HandedOver(uint256 indexed taskId, uint256 indexed nodeId, uint8 index, bytes32 sealedCid);
    event CustodySettled(uint256 indexed taskId, uint8 delivered);
    /// @notice The sponsor withdrew a custody that was not ready: the fee back to it, each
    ///         stake to its party, and the task free to register another.
    event CustodyWithdrawn(uint256 indexed taskId);
    /// @param kind 0: a score (value in basis points); 1: a rejection (value the reason code).
    event Attested(uint256 indexed taskId, uint256 indexed nodeId, uint8 index, uint8 kind, uint16 value);
    /// @notice The custodians attested different outcomes; both attestations are cleared so they
    ///         can try again (a custodian that keeps disagreeing stalls the node, no more).
    event AttestationsDiffer(uint256 indexed taskId, uint256 indexed nodeId, uint32 first, uint32 second);
    /// @notice The sponsor gave the custodians its validation rows, as two shares sealed to
    ///         their keys.
    event ValidationShared(uint256 indexed taskId, bytes32 share0, bytes32 share1);
    /// @notice Custodian `index` gives up on the task's `pendingSeen` pending nodes, as it saw
    ///         them after `submissions` submissions ({finalizeLeaving}).
    event LeavingAgreed(uint256 indexed taskId, uint8 index, uint256 pendingSeen, uint256 submissions);
    /// @notice Custodian `index` says whether it can read its share of the validation rows
    ///         ({reportValidation}).
    event ValidationReported(uint256 indexed taskId, uint8 index, bool readable);
    /// @notice Custodian `index` says whether node `nodeId` waits for the dealer ({reportDealer}).
    event DealerReported(uint256 indexed taskId, uint256 indexed nodeId, uint8 index, bool waits);
    event Credited(uint256 indexed taskId, address indexed account, uint256 amount, uint8 kind);
    event Withdrawn(address indexed account, uint256 amount);

    // ─────────────────────────────── errors ──────────────────────────────

    error UnknownTask(uint256 taskId);
    error NotAdmin(address caller);
    /// @notice A custodian or dealer the admin has not approved.
    error NotApproved(address account);
    error NotSponsor(address caller);
    error TaskClosed(uint256 taskId);
    /// @notice The task was created public (`createTask(…, privateModels = false)`): it never
    ///         turns private.
    error NotPrivate(uint256 taskId);
    error AlreadyRegistered(uint256 taskId);
    error NotRegistered(uint256 taskId);
    /// @notice The custodians, the dealer and the sponsor must be four different accounts.
    error PartiesNotDistinct();
    /// @notice A party accepting custody must give its X25519 public key.
    error ZeroKey();
    error AmountTooLarge(uint256 amount);
    error WindowOutOfRange(uint256 window);
    error NotAParty(address caller);
    error WrongStake(uint256 sent, uint256 stake);
    error AlreadyAccepted(address caller);
    error NotCustodian(address caller);
    error CustodyNotReady(uint256 taskId);
    /// @notice The three accepted: the custody holds the task, and is not withdrawn.
    error CustodyReady(uint256 taskId);
    /// @notice The terms an accepting party names are not the registered ones (the sponsor
    ///         withdrew and registered others since the party read them).
    error TermsChanged(bytes32 registered, bytes32 named);
    error NodeNotInTask(uint256 nodeId);
    error EmptyCommitment();
    error AlreadyCommitted(uint256 nodeId, uint8 index);
    error NotFinalized(uint256 taskId);
    error NoWinner(uint256 taskId);
    error NoCommitment(uint256 nodeId, uint8 index);
    error AlreadyHandedOver(uint8 index);
    error HandoverClosed(uint256 deadline);
    error HandoverOpen(uint256 deadline);
    error AlreadySettled(uint256 taskId);
    error NothingToWithdraw();
    error NodeNotPending(uint256 nodeId);
    error AlreadyAttested(uint256 nodeId, uint8 index);
    error BadAttestation(uint8 kind, uint16 value);
    error AlreadyShared(uint256 taskId);
    error NotShared(uint256 taskId);
    /// @notice The task took a submission since the custodian decided to finalize leaving nodes.
    error SubmissionsChanged(uint256 taskId, uint256 submissions, uint256 seen);
    error TransferFailed();

    // ───────────────────────────── functions ─────────────────────────────

    /// @notice The admin approves (or withdraws approval of) an account as custodian or dealer.
    function approve(address account, bool approved) external;

    function isApproved(address account) external view returns (bool);

    /// @notice Anyone, once the task is finalized: opens the hand-over window (the handover
    ///         and settle calls do it too). The window runs from this moment, so finalizing late
    ///         never shortens it.
    function noteFinalized(uint256 taskId) external;

    /// @notice Registers a private task's custody: names its custodians, dealer and the
    ///         sponsor's key (a task created public is refused: NotPrivate). Only the task's
    ///         sponsor, while the task is open. msg.value is the custody fee. The task takes no
    ///         commitment until the three accepted and the sponsor shared its rows
    ///         ({shareValidation}).
    /// @param stake Wei each of the three must stake to accept.
    /// @param handoverWindow Seconds the custodians have for the hand-over once finalization is
    ///        noted, 1 hour to 30 days.
    function register(
        uint256 taskId,
        address custodian0,
        address custodian1,
        address dealer,
        bytes32 sponsorKey,
        uint256 stake,
        uint256 handoverWindow
    ) external payable;

    /// @notice A named party accepts custody by staking exactly the task's stake and giving its
    ///         X25519 public key: what a custodian is sent is sealed to it, and the three
    ///         parties' session links authenticate with it (a party that cannot prove the key
    ///         the chain holds for it is refused by the others). Only before the task's deadline
    ///         (TaskClosed): a custody completed after it could never hold anything.
    /// @param terms The {termsOf} hash of the registration the party read: the sponsor may
    ///        withdraw a custody and register another ({withdrawCustody}), and a party must
    ///        never be bound to terms it did not see (another role, no fee; TermsChanged).
    function accept(uint256 taskId, bytes32 terms, bytes32 sealingKey) external payable;

    /// @notice What a party accepts: keccak256 of the ABI encoding of (taskId, custodian0,
    ///         custodian1, dealer, sponsorKey, stake, fee, handoverWindow) as registered
    ///         (bountytree/market/custody.py computes the same from what it read).
    function termsOf(uint256 taskId) external view returns (bytes32);

    /// @notice The sponsor withdraws a custody that is not ready (a party that never accepts):
    ///         the fee comes back to it and each stake to its party, as {settle} does for a
    ///         custody that never started, and the task, which took nothing meanwhile, may
    ///         register another. Accepts name the terms they read, so a party is never bound
    ///         to the new registration by an accept sent for the old one.
    function withdrawCustody(uint256 taskId) external;

    /// @notice Custodian `index` of the node's task records its commitment to its share of the
    ///         node, once.
    function commitShare(uint256 nodeId, bytes32 commitment) external;

    /// @notice After finalize with a winner, a custodian posts the CID of its share of the winner
    ///         sealed to the sponsor's key, by the hand-over deadline; the second hand-over
    ///         settles the custody.
    function handOver(uint256 taskId, bytes32 sealedCid) external;

    /// @notice Settles a custody that cannot or did not complete by hand-over: the task was
    ///         finalized without a winner, custody never started, or the hand-over deadline
    ///         passed. Anyone may call it.
    function settle(uint256 taskId) external;

    /// @notice The sponsor gives the custodians its validation rows: the CIDs of the two shares,
    ///         each sealed to its custodian's key (bountytree/private/rows.py), once, after all
    ///         three accepted. This contract then becomes the task's custody on BountyTree
    ///         ({IBountyTree-markCustodied}): from this moment the task takes commitments.
    function shareValidation(uint256 taskId, bytes32 share0, bytes32 share1) external;

    /// @notice Custodian `index` of a pending node's task attests its outcome: kind 0 a score
    ///         (the Ladder's record, 0..10000), kind 1 a rejection (a reason code, 1..255). The
    ///         second, equal attestation records it on BountyTree; two rejections agree whatever
    ///         their reasons (the one recorded is {RejectReasons-agreed}'s: the first's, or an
    ///         UNCONFIRMED beside a fault one custodian sees alone, which returns the node's
    ///         stake, a TOO_SLOW beside any, which returns it too, accepted only of a trained
    ///         node neither custodian committed to (its training) or of a node both committed to
    ///         (its scoring), or a PARENT_REJECTED, accepted only when the parent is rejected).
    function attest(uint256 nodeId, uint8 kind, uint16 value) external;

    function attestationOf(uint256 nodeId, uint8 index) external view returns (uint32);

    /// @notice A custodian gives up on the task's pending nodes (it cannot score them: a record
    ///         out of range, say) and agrees to finalize leaving them; the second custodian's
    ///         equal agreement calls {IBountyTree-finalizeLeaving}, which this contract alone may
    ///         call for a custodied task. Agreements are on the pending count and the task's
    ///         submissions the caller saw: pending nodes only leave, so two equal agreements
    ///         name the same nodes, and one made before a later submission matches nothing after
    ///         it.
    /// @param pendingSeen The task's pendingNodes as the custodian decided on them.
    /// @param submissionsSeen The task's submissions then; another count now reverts
    ///        {SubmissionsChanged} (a node revealed while the call was on its way).
    function finalizeLeaving(uint256 taskId, uint256 pendingSeen, uint256 submissionsSeen) external;

    function validationShares(uint256 taskId) external view returns (bytes32 share0, bytes32 share1);

    /// @notice A custodian says whether it can read its share of the sponsor's validation rows:
    ///         `readable` false when the file was not served within its fetch timeout or does
    ///         not open; true once it read it after saying so. While either custodian's last word
    ///         is false, the task's nodes wait for the sponsor: finalized with nodes pending, the
    ///         task burns its bond ({IBountyTree-markValidationUnread}), as a public task whose
    ///         validator never ran does. A sponsor cannot serve one custodian to stall the other:
    ///         either one's word is enough. A custodian takes its word back once every node
    ///         pending when it read its share again is done (custodian/service.py).
    /// @param taskId A task whose custody is ready and holds the validation rows
    ///        ({CustodyNotReady}, {NotShared}), not finalized.
    function reportValidation(uint256 taskId, bool readable) external;

    /// @notice Bit i set: custodian i's last word is that it cannot read its validation share.
    function validationUnread(uint256 taskId) external view returns (uint8);

    /// @notice A custodian says whether a pending node waits for the dealer: `waits` true once,
    ///         for its dealer timeout, every session it held with the other custodian found no
    ///         dealer, the last of them for this node (custodian 0 sees the dealer arrive itself;
    ///         custodian 1 waits for it once linked with custodian 0, and tells custodian 0
    ///         whether it came); false once a session for this node had the dealer. A node both
    ///         custodians' last word says waits is counted in {dealerWaiting} until it is
    ///         recorded; a task finalized while the count is not zero sends the dealer's fee third
    ///         back to the sponsor at settlement, and returns the dealer's stake. The word is per
    ///         node, and taken back only by a session for that node that the dealer came to: a
    ///         dealer back for one session before finalize is not paid for the nodes it left
    ///         waiting, and one that was away once is not unpaid for nodes that wait for anything
    ///         else (a node given up on, a task that never runs out of pending nodes). One
    ///         custodian's word alone changes nothing; the stake is never taken: a custodian that
    ///         keeps the dealer out can make both say it, costing the dealer a fee it could not
    ///         earn, and gains nothing itself.
    /// @param nodeId A pending node ({NodeNotPending}) of a task whose custody is ready
    ///        ({CustodyNotReady}), not finalized ({TaskClosed}).
    function reportDealer(uint256 nodeId, bool waits) external;

    /// @notice The task's pending nodes both custodians say wait for the dealer.
    function dealerWaiting(uint256 taskId) external view returns (uint256);

    /// @notice Bit i set: custodian i's last word is that the node waits for the dealer.
    function dealerWaitOf(uint256 nodeId) external view returns (uint8);

    /// @notice Pays out everything credited to the caller.
    function withdraw() external;

    function custodyOf(uint256 taskId) external view returns (Custody memory);

    function commitmentOf(uint256 nodeId, uint8 index) external view returns (bytes32);

    /// @notice The last moment a custodian may hand over (0: not private, or not finalized yet).
    function handoverDeadline(uint256 taskId) external view returns (uint256);

    function pendingWithdrawals(address account) external view returns (uint256);
}
