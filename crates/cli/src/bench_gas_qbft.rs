//! The QBFT part of `kakehashi bench gas`: what verifying a QBFT header's committed seals on
//! chain costs (`QBFTHeaderVerifier`: RLP decode, seal digest, one ecrecover per seal, quorum),
//! the cost an LCP client replaces with one enclave-key signature check. Headers have the
//! Cancun layout (20 fields, 256-byte logs bloom), N validators in extraData and a seal from
//! each of them (kh-qbft signs them). Figures `qbftHeaderVerify_N` (gasUsed) and
//! `qbftHeaderVerify_N_execution` (minus intrinsic gas) for N = 4, 7, 21.

use alloy_primitives::{Address, B256, U256};
use k256::ecdsa::SigningKey;
use kh_contracts::QBFTHeaderVerifier;
use kh_qbft::{BFT_MIX_HASH, EMPTY_OMMERS_HASH, ExtraData, Header, address_of, sign_seal};

use crate::bench_gas_lcp::measured;
use crate::evm_tx::Sender;

/// A 20-field QBFT header at `number` sealed by every key of `keys` (its validator set).
fn sealed_header(number: u64, timestamp: u64, keys: &[SigningKey]) -> anyhow::Result<Vec<u8>> {
    let extra = ExtraData {
        vanity: [0; 32],
        validators: keys.iter().map(|k| address_of(k.verifying_key())).collect(),
        vote: None,
        round: 0,
        seals: vec![],
    };
    let validators = &extra.validators;
    let items: Vec<Vec<u8>> = vec![
        alloy_rlp::encode(B256::repeat_byte(0x01)),
        alloy_rlp::encode(EMPTY_OMMERS_HASH),
        alloy_rlp::encode(validators.first().copied().unwrap_or(Address::ZERO)),
        alloy_rlp::encode(B256::repeat_byte(0x02)),
        alloy_rlp::encode(B256::repeat_byte(0x03)),
        alloy_rlp::encode(B256::repeat_byte(0x04)),
        alloy_rlp::encode(&[0x10u8; 256][..]),
        alloy_rlp::encode(1u64),
        alloy_rlp::encode(number),
        alloy_rlp::encode(30_000_000u64),
        alloy_rlp::encode(2_100_000u64),
        alloy_rlp::encode(timestamp),
        alloy_rlp::encode(&extra.encode()[..]),
        alloy_rlp::encode(BFT_MIX_HASH),
        alloy_rlp::encode(&[0u8; 8][..]),
        alloy_rlp::encode(U256::from(7u64)),
        alloy_rlp::encode(B256::repeat_byte(0x05)),
        alloy_rlp::encode(0u64),
        alloy_rlp::encode(0u64),
        alloy_rlp::encode(B256::repeat_byte(0x06)),
    ];
    let payload = items.concat();
    let mut rlp = Vec::with_capacity(payload.len() + 4);
    alloy_rlp::Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut rlp);
    rlp.extend_from_slice(&payload);
    let header = Header::decode(&rlp)?;
    let digest = header.seal_digest();
    Ok(header
        .with_extra_data(&ExtraData {
            seals: keys.iter().map(|k| sign_seal(digest, k)).collect(),
            ..extra
        })
        .encode())
}

/// Deploys the verifier and measures headers of 4, 7 and 21 validators.
pub(crate) async fn measure(
    sender: &mut Sender,
    now: u64,
    gas: &mut super::bench_gas::Gas,
) -> anyhow::Result<()> {
    let verifier = sender
        .deploy(&QBFTHeaderVerifier::BYTECODE, vec![], None)
        .await?;
    for (n, names) in [
        (
            4usize,
            ("qbftHeaderVerify_4", "qbftHeaderVerify_4_execution"),
        ),
        (7, ("qbftHeaderVerify_7", "qbftHeaderVerify_7_execution")),
        (21, ("qbftHeaderVerify_21", "qbftHeaderVerify_21_execution")),
    ] {
        let keys = (1..=n)
            .map(|i| SigningKey::from_slice(&[u8::try_from(i)?; 32]).map_err(anyhow::Error::from))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let header = sealed_header(1_000, now, &keys)?;
        let (used, execution) = measured(
            sender,
            verifier,
            QBFTHeaderVerifier::verifyHeaderCall {
                header: header.into(),
            },
        )
        .await?;
        gas.insert(names.0, used);
        gas.insert(names.1, execution);
    }
    Ok(())
}
