// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title TestReceiver: an ERC-721 receiver used by tests; accepts tokens when `accept` is true
/// and records the last call.
contract TestReceiver {
    bool public accept;
    address public lastOperator;
    address public lastFrom;
    uint256 public lastTokenId;
    bytes public lastData;

    constructor(bool accept_) {
        accept = accept_;
    }

    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4)
    {
        lastOperator = operator;
        lastFrom = from;
        lastTokenId = tokenId;
        lastData = data;
        return accept ? this.onERC721Received.selector : bytes4(0xdeadbeef);
    }
}
