// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IReputation
/// @notice Global, append-only reputation per address across every bountytree task, written by
///         exactly one marketplace.
interface IReputation {
    /// @notice Emitted whenever the score of `account` changes by `delta`.
    /// @param account Whose score changed.
    /// @param delta The change.
    /// @param score The score after the change.
    event ReputationChanged(address indexed account, int256 delta, int256 score);

    /// @notice Emitted once, when the deployer binds the only writer.
    /// @param writer The marketplace allowed to write from now on.
    event WriterBound(address indexed writer);

    /// @notice Only the deployer binds the writer.
    error NotDeployer(address caller);
    /// @notice The writer is bound once and for all.
    error WriterAlreadyBound(address writer);
    /// @notice The writer cannot be the zero address.
    error ZeroWriter();
    /// @notice Only the bound writer adjusts scores.
    error NotWriter(address caller);
    /// @notice `accounts` and `deltas` differ in length.
    error LengthMismatch();

    /// @notice Binds the marketplace that may write scores. Callable once, by the deployer.
    /// @param newWriter The BountyTree contract.
    function bindWriter(address newWriter) external;

    /// @notice Adds `deltas[i]` to the score of `accounts[i]` for every i.
    /// @dev The caller bounds the array length (BountyTree: by its maximum tree depth).
    function adjust(address[] calldata accounts, int256[] calldata deltas) external;

    /// @notice The only contract allowed to change scores (zero until bound).
    function writer() external view returns (address);

    /// @notice The current reputation of `account` (0 for an address never seen).
    function scoreOf(address account) external view returns (int256);
}
