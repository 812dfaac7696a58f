//! Storage layout facts of the contracts that other components prove with `eth_getProof`.

use alloy_primitives::{B256, U256, keccak256};

/// The storage slot of `KhNft`'s `_owners` mapping (see the layout note in `KhNft.sol`).
pub const KH_NFT_OWNERS_SLOT: u64 = 4;

/// The storage slot holding `ownerOf(token_id)` in `KhNft`: keccak256(tokenId ‖ slot), the
/// Solidity layout of a `mapping(uint256 => address)` at slot [`KH_NFT_OWNERS_SLOT`].
///
/// The value for token 1 agrees with ethers.js (`keccak256(abi.encode(1, 4))`):
/// ```
/// use alloy_primitives::{U256, b256};
/// assert_eq!(
///     kh_contracts::kh_nft_owner_slot(U256::from(1)),
///     b256!("0xabd6e7cb50984ff9c2f3e18a2660c3353dadf4e3291deeb275dae2cd1e44fe05"),
/// );
/// ```
pub fn kh_nft_owner_slot(token_id: U256) -> B256 {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(&token_id.to_be_bytes::<32>());
    preimage[32..].copy_from_slice(&U256::from(KH_NFT_OWNERS_SLOT).to_be_bytes::<32>());
    keccak256(preimage)
}

/// The base storage location of the IBC handler's store (ERC-7201 namespace `ibc.commitment`,
/// the yui-ibc-solidity commitment slot): the commitment mapping `bytes32 => bytes32` sits there.
pub const IBC_COMMITMENTS_BASE: B256 =
    alloy_primitives::b256!("0x1ee222554989dda120e26ecacf756fe1235cd8d726706b57517715dde4f0c900");

/// The storage slot of the commitment of ICS-24 `path` in the IBC handler:
/// keccak256(keccak256(path) ‖ [`IBC_COMMITMENTS_BASE`]). It holds keccak256(commitment bytes).
///
/// The worked value of the vectors (`vectors/mpt`, case `ibc_commitment_membership`):
/// ```
/// use alloy_primitives::b256;
/// assert_eq!(
///     kh_contracts::ibc_commitment_slot("clients/lcp-client-0/clientState"),
///     b256!("0x35c1d86194f8ce30f3fa3b209e77f0af2cbcb385bcf2b13bf0f641d4cf40f711"),
/// );
/// ```
pub fn ibc_commitment_slot(path: &str) -> B256 {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(keccak256(path.as_bytes()).as_slice());
    preimage[32..].copy_from_slice(IBC_COMMITMENTS_BASE.as_slice());
    keccak256(preimage)
}

/// The ICS-24 path of a packet's commitment, receipt or acknowledgement (`kind`: `commitments`,
/// `receipts` or `acks`) on `port`/`channel`.
pub fn packet_path(kind: &str, port: &str, channel: &str, sequence: u64) -> String {
    format!("{kind}/ports/{port}/channels/{channel}/sequences/{sequence}")
}

/// ICS-04's packet commitment, as the handler stores it at the packet's `commitments` path:
/// sha256(timeout_timestamp ‖ revision_number ‖ revision_height ‖ sha256(data)).
pub fn packet_commitment(p: &crate::IBCChannelPacket::Packet) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut pre = Vec::with_capacity(56);
    pre.extend(p.timeoutTimestamp.to_be_bytes());
    pre.extend(p.timeoutHeight.revisionNumber.to_be_bytes());
    pre.extend(p.timeoutHeight.revisionHeight.to_be_bytes());
    pre.extend(Sha256::digest(&p.data));
    Sha256::digest(&pre).into()
}
