// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Limits: constants shared by the examples (imported by relative path).
library Limits {
    /// @notice The highest count of one account in LinkedCounter.
    uint256 internal constant PER_ACCOUNT = 1000;
}
