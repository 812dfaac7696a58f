// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Imported through the remapping of contracts/remappings.txt (`@kakehashi/` = solidity/).
import {Tally} from "@kakehashi/lib/Tally.sol";
import {Limits} from "./Limits.sol";

/// @title LinkedCounter: counts calls per sender through the linked Tally library.
contract LinkedCounter {
    /// @notice A sender's count changed.
    event Counted(address indexed account, uint256 count);

    /// @dev Storage layout (checked against solc's storageLayout by kh-contracts' tests):
    /// slot 0: owner; slot 1: book.counts; slot 2: book.total.
    address public owner;
    Tally.Book private book;

    constructor() {
        owner = msg.sender;
    }

    /// @notice Counts `by` for the sender, up to the per-account limit.
    function count(uint256 by) external returns (uint256 total) {
        total = Tally.add(book, msg.sender, by, Limits.PER_ACCOUNT);
        emit Counted(msg.sender, total);
    }

    /// @notice `account`'s count.
    function countOf(address account) external view returns (uint256) {
        return book.counts[account];
    }

    /// @notice `account`'s share of all counts, in basis points.
    function shareBps(address account) external view returns (uint256) {
        return Tally.shareBps(book, account);
    }
}
