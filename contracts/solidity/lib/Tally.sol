// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Tally: per-account counters kept in the caller's storage.
/// @notice An external library (its functions are `external`, so callers reach it with
/// DELEGATECALL at a linked address): the example that proves build.mjs links libraries.
library Tally {
    /// @notice Counts per account and their sum.
    struct Book {
        mapping(address => uint256) counts;
        uint256 total;
    }

    /// @notice A count would pass `limit`.
    error OverLimit(address account, uint256 count, uint256 limit);

    /// @notice Adds `by` to `account`'s count, refusing counts above `limit`; returns the count.
    function add(Book storage book, address account, uint256 by, uint256 limit)
        external
        returns (uint256 count)
    {
        count = book.counts[account] + by;
        if (count > limit) revert OverLimit(account, count, limit);
        book.counts[account] = count;
        book.total += by;
    }

    /// @notice The share of `account` in the total, in basis points (0 when nothing is counted).
    function shareBps(Book storage book, address account) external view returns (uint256) {
        if (book.total == 0) return 0;
        return book.counts[account] * 10_000 / book.total;
    }
}
