// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IReputation} from "./interfaces/IReputation.sol";

/// @title Reputation
/// @notice Global, append-only reputation per address across every bountytree task.
/// @dev Kept apart from BountyTree so that a later marketplace version can be pointed at
///      the same history. Exactly one writer is ever bound, once, by the deployer; after
///      that nobody (the deployer included) can change who writes.
contract Reputation is IReputation {
    address private immutable _deployer;

    // slot 0
    /// @inheritdoc IReputation
    address public writer;
    // slot 1
    mapping(address account => int256 score) private _scores;

    constructor() {
        _deployer = msg.sender;
    }

    /// @inheritdoc IReputation
    function bindWriter(address newWriter) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (writer != address(0)) revert WriterAlreadyBound(writer);
        if (newWriter == address(0)) revert ZeroWriter();
        writer = newWriter;
        emit WriterBound(newWriter);
    }

    /// @inheritdoc IReputation
    /// @dev One call per settlement keeps the cross-contract overhead to a single CALL.
    function adjust(address[] calldata accounts, int256[] calldata deltas) external {
        if (msg.sender != writer) revert NotWriter(msg.sender);
        if (accounts.length != deltas.length) revert LengthMismatch();
        for (uint256 i = 0; i < accounts.length; ++i) {
            int256 score = _scores[accounts[i]] + deltas[i];
            _scores[accounts[i]] = score;
            emit ReputationChanged(accounts[i], deltas[i], score);
        }
    }

    /// @inheritdoc IReputation
    function scoreOf(address account) external view returns (int256) {
        return _scores[account];
    }
}
