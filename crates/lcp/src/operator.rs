//! Operator signatures (EIP-712), as lcp-solidity's permissioned clients check them: an
//! operator approves the registration of the enclave key a report attests by signing
//! `keccak256(0x1901 ‖ domain ‖ keccak256(abi.encode(keccak256("RegisterEnclaveKey(string avr)"),
//! keccak256(avr))))`, where the domain is LCP's "universal" EIP-712 domain (chain id 0, no
//! verifying contract, zero salt), so one signature serves every chain the key is registered
//! on. This is the domain of the vectors (lcp-solidity at 65f8deb and LCP's Rust client,
//! `0x7fd2…8a4c`); later lcp-solidity versions salt it with the chain type (`0xe33d…fa6a`,
//! [`domain_separator`] with [`evm_chain_type_salt`]).

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolValue as _;

use crate::message::{MessageError, recover_prehash};

/// The EIP-712 domain type of LCP clients.
const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)";
/// The type of an enclave key registration.
const REGISTER_ENCLAVE_KEY_TYPE: &str = "RegisterEnclaveKey(string avr)";
/// Chain type EVM in the domain salt.
const CHAIN_TYPE_EVM: u16 = 1;

/// The salt later lcp-solidity versions put in the domain: keccak256 of the chain type (EVM,
/// 2 big-endian bytes).
pub fn evm_chain_type_salt() -> B256 {
    keccak256(CHAIN_TYPE_EVM.to_be_bytes())
}

/// LCP's EIP-712 domain separator (name "LCPClient", version "1").
pub fn domain_separator(chain_id: u64, verifying_contract: Address, salt: B256) -> B256 {
    keccak256(
        (
            keccak256(DOMAIN_TYPE.as_bytes()),
            keccak256(b"LCPClient"),
            keccak256(b"1"),
            U256::from(chain_id),
            verifying_contract,
            salt,
        )
            .abi_encode(),
    )
}

/// The digest an operator signs to approve registering the key attested by `avr` (the exact
/// AVR text).
pub fn register_enclave_key_digest(avr: &str) -> B256 {
    let struct_hash = keccak256(
        (
            keccak256(REGISTER_ENCLAVE_KEY_TYPE.as_bytes()),
            keccak256(avr.as_bytes()),
        )
            .abi_encode(),
    );
    let mut pre = Vec::with_capacity(66);
    pre.extend_from_slice(&[0x19, 0x01]);
    pre.extend_from_slice(domain_separator(0, Address::ZERO, B256::ZERO).as_slice());
    pre.extend_from_slice(struct_hash.as_slice());
    keccak256(pre)
}

/// The operator whose 65-byte signature (v ∈ {27, 28} or {0, 1}) approves `avr`.
pub fn recover_register_operator(avr: &str, signature: &[u8]) -> Result<Address, MessageError> {
    recover_prehash(register_enclave_key_digest(avr), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domains_of_lcp_solidity() {
        // The constants lcp-solidity's LCPOperator pins: the universal domain of the vectors'
        // version, and the chain-type-salted domain of later versions.
        assert_eq!(
            format!("{}", domain_separator(0, Address::ZERO, B256::ZERO)),
            "0x7fd21c2453e80741907e7ff11fd62ae1daa34c6fc0c2eced821f1c1d3fe88a4c"
        );
        assert_eq!(
            format!(
                "{}",
                domain_separator(0, Address::ZERO, evm_chain_type_salt())
            ),
            "0xe33d217bff42bc015bf037be8386bf5055ec6019e58e8c5e89b5c74b8225fa6a"
        );
    }
}
