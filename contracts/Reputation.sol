// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Reputation
/// @notice Global, append-only reputation per address across every bountytree task.
/// @dev Kept apart from BountyTree so that a later marketplace version can be pointed at
///      the same history. Exactly one writer is ever bound, once, by the deployer; after
///      that nobody (the deployer included) can change who writes.
contract Reputation {
    /// @notice Emitted whenever the score of `account` changes by `delta`.
    event ReputationChanged(address indexed account, int256 delta, int256 score);
    /// @notice Emitted once, when the deployer binds the only writer.
    event WriterBound(address indexed writer);

    error NotDeployer(address caller);
    error WriterAlreadyBound(address writer);
    error ZeroWriter();
    error NotWriter(address caller);
    error LengthMismatch();

    address private immutable _deployer;
    /// @notice The only contract allowed to change scores (the BountyTree marketplace).
    address public writer;
    mapping(address account => int256 score) private _scores;

    constructor() {
        _deployer = msg.sender;
    }

    /// @notice Binds the marketplace that may write scores. Callable once, by the deployer.
    /// @param newWriter The BountyTree contract.
    function bindWriter(address newWriter) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (writer != address(0)) revert WriterAlreadyBound(writer);
        if (newWriter == address(0)) revert ZeroWriter();
        writer = newWriter;
        emit WriterBound(newWriter);
    }

    /// @notice Adds `deltas[i]` to the score of `accounts[i]` for every i.
    /// @dev One call per settlement keeps the cross-contract overhead to a single CALL; the
    ///      caller bounds the array length (BountyTree: by its maximum tree depth).
    function adjust(address[] calldata accounts, int256[] calldata deltas) external {
        if (msg.sender != writer) revert NotWriter(msg.sender);
        if (accounts.length != deltas.length) revert LengthMismatch();
        for (uint256 i = 0; i < accounts.length; ++i) {
            int256 score = _scores[accounts[i]] + deltas[i];
            _scores[accounts[i]] = score;
            emit ReputationChanged(accounts[i], deltas[i], score);
        }
    }

    /// @notice The current reputation of `account` (0 for an address never seen).
    function scoreOf(address account) external view returns (int256) {
        return _scores[account];
    }
}
