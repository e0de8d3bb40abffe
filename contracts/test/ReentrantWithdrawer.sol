// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IBountyTree} from "../interfaces/IBountyTree.sol";

/// @notice Test-only attacker: a sponsor contract whose receive() calls withdraw() again.
/// @dev Not deployed by scripts/; tests use it to show withdraw() cannot be re-entered.
contract ReentrantWithdrawer {
    IBountyTree public immutable tree;
    /// @notice true: let the re-entrant call's revert bubble up; false: swallow it.
    bool public bubble;
    uint256 public reentryAttempts;
    uint256 public received;

    constructor(IBountyTree tree_) {
        tree = tree_;
    }

    function sponsor(uint64 deadline) external payable returns (uint256) {
        return tree.createTask{value: msg.value}(
            keccak256("spec"), keccak256("validation"), 9000, deadline, 5000, 3000, 2000, 0, 0, 0, 0, false
        );
    }

    function attack(bool bubble_) external {
        bubble = bubble_;
        tree.withdraw();
    }

    receive() external payable {
        received += msg.value;
        if (reentryAttempts == 0) {
            reentryAttempts = 1;
            if (bubble) {
                tree.withdraw();
            } else {
                try tree.withdraw() {} catch {}
            }
        }
    }
}
