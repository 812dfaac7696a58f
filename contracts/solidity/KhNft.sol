// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ERC-165 interface detection.
interface IERC165 {
    function supportsInterface(bytes4 interfaceId) external view returns (bool);
}

/// @title The receiver hook of ERC-721 safe transfers.
interface IERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}

/// @title KhNft: the ERC-721 non-fungible token of kakehashi's DvP use case.
/// @notice ERC-721 with the metadata extension, an owner and a set of minters. Written from the
/// EIP-721 specification.
contract KhNft is IERC165 {
    // ---- events (EIP-721) ----
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);
    // ---- events (roles) ----
    event MinterAdded(address indexed account);
    event MinterRemoved(address indexed account);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // ---- errors ----
    error NotOwner(address caller);
    error NotMinter(address caller);
    error ZeroAddress();
    error TokenExists(uint256 tokenId);
    error NoSuchToken(uint256 tokenId);
    error NotAuthorized(address caller, uint256 tokenId);
    error WrongFrom(address from, address owner);
    error ApproveToOwner(address owner);
    error NotReceiver(address to);

    string private _name;
    string private _symbol;
    string private _baseUri;
    address public owner;

    /// @dev Storage layout (kept stable: tests prove ownerOf with eth_getProof):
    /// slot 4: _owners (tokenId => owner).
    mapping(uint256 => address) private _owners;
    mapping(address => uint256) private _balances;
    mapping(uint256 => address) private _approvals;
    mapping(address => mapping(address => bool)) private _operators;
    mapping(address => bool) public isMinter;

    constructor(string memory name_, string memory symbol_, string memory baseUri_) {
        _name = name_;
        _symbol = symbol_;
        _baseUri = baseUri_;
        owner = msg.sender;
        isMinter[msg.sender] = true;
        emit OwnershipTransferred(address(0), msg.sender);
        emit MinterAdded(msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    // ---- roles ----

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function addMinter(address account) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        if (!isMinter[account]) {
            isMinter[account] = true;
            emit MinterAdded(account);
        }
    }

    function removeMinter(address account) external onlyOwner {
        if (isMinter[account]) {
            isMinter[account] = false;
            emit MinterRemoved(account);
        }
    }

    // ---- ERC-165 ----

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 // ERC-165
            || interfaceId == 0x80ac58cd // ERC-721
            || interfaceId == 0x5b5e139f; // ERC-721 metadata
    }

    // ---- metadata ----

    function name() external view returns (string memory) {
        return _name;
    }

    function symbol() external view returns (string memory) {
        return _symbol;
    }

    function tokenURI(uint256 tokenId) external view returns (string memory) {
        _requireOwned(tokenId);
        return string.concat(_baseUri, _decimal(tokenId));
    }

    // ---- ERC-721 views ----

    function balanceOf(address account) external view returns (uint256) {
        if (account == address(0)) revert ZeroAddress();
        return _balances[account];
    }

    function ownerOf(uint256 tokenId) public view returns (address) {
        return _requireOwned(tokenId);
    }

    function getApproved(uint256 tokenId) public view returns (address) {
        _requireOwned(tokenId);
        return _approvals[tokenId];
    }

    function isApprovedForAll(address account, address operator) public view returns (bool) {
        return _operators[account][operator];
    }

    // ---- minting ----

    function mint(address to, uint256 tokenId) external {
        if (!isMinter[msg.sender]) revert NotMinter(msg.sender);
        if (to == address(0)) revert ZeroAddress();
        if (_owners[tokenId] != address(0)) revert TokenExists(tokenId);
        _owners[tokenId] = to;
        unchecked {
            _balances[to] += 1;
        }
        emit Transfer(address(0), to, tokenId);
    }

    // ---- approvals ----

    function approve(address approved, uint256 tokenId) external {
        address holder = _requireOwned(tokenId);
        if (approved == holder) revert ApproveToOwner(holder);
        if (msg.sender != holder && !_operators[holder][msg.sender]) {
            revert NotAuthorized(msg.sender, tokenId);
        }
        _approvals[tokenId] = approved;
        emit Approval(holder, approved, tokenId);
    }

    function setApprovalForAll(address operator, bool approved) external {
        if (operator == address(0)) revert ZeroAddress();
        _operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    // ---- transfers ----

    function transferFrom(address from, address to, uint256 tokenId) public {
        if (to == address(0)) revert ZeroAddress();
        address holder = _requireOwned(tokenId);
        if (holder != from) revert WrongFrom(from, holder);
        if (msg.sender != holder && _approvals[tokenId] != msg.sender && !_operators[holder][msg.sender]) {
            revert NotAuthorized(msg.sender, tokenId);
        }
        delete _approvals[tokenId];
        unchecked {
            _balances[from] -= 1;
            _balances[to] += 1;
        }
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function safeTransferFrom(address from, address to, uint256 tokenId) external {
        safeTransferFrom(from, to, tokenId, "");
    }

    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data) public {
        transferFrom(from, to, tokenId);
        if (to.code.length > 0) {
            try IERC721Receiver(to).onERC721Received(msg.sender, from, tokenId, data) returns (bytes4 ret) {
                if (ret != IERC721Receiver.onERC721Received.selector) revert NotReceiver(to);
            } catch {
                revert NotReceiver(to);
            }
        }
    }

    // ---- internals ----

    function _requireOwned(uint256 tokenId) private view returns (address holder) {
        holder = _owners[tokenId];
        if (holder == address(0)) revert NoSuchToken(tokenId);
    }

    function _decimal(uint256 value) private pure returns (string memory) {
        if (value == 0) return "0";
        uint256 digits;
        for (uint256 v = value; v != 0; v /= 10) {
            digits++;
        }
        bytes memory out = new bytes(digits);
        while (value != 0) {
            digits--;
            out[digits] = bytes1(uint8(48 + value % 10));
            value /= 10;
        }
        return string(out);
    }
}
