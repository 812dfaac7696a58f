//! The LCP client's part of `kakehashi bench gas`: the Solidity `LCPClient` (with its
//! `LCPAttestation`) deployed on a devnet, called directly by the account it names as handler,
//! with a fresh simulation authority (RSA-2048 root and signing certificate), reports and enclave
//! keys made by kh-lcp at the devnet's time.
//!
//! Figures: `lcpRegisterEnclaveKey` (first registration: the signing certificate is checked
//! against the root), `lcpRegisterEnclaveKeyKnownCert` (a second key, certificate cached),
//! `lcpUpdateClient` (UpdateState with a trusting-period context), `lcpVerifyMembership`,
//! `lcpVerifyNonMembership` (a transaction calling the view), each the transaction's
//! `gasUsed`; the `*_execution` figures subtract the intrinsic gas (21,000 + calldata, Cancun)
//! so they compare with in-EVM measurements such as lcp-solidity's Forge figures.

use alloy_primitives::{Address, Bytes};
use alloy_sol_types::{SolCall, SolConstructor};
use anyhow::Context;
use kh_contracts::{LCPAttestation, LCPClient};
use kh_lcp::wire;
use kh_lcp::{
    EnclaveKey, Height, ProxyMessage, SimulationCa, StateId, TrustingPeriodContext,
    UpdateStateMessage, ValidationContext, VerifyMembershipMessage,
};

use crate::evm_tx::Sender;

const MRENCLAVE: [u8; 32] = [0x4c; 32];
const CLIENT_ID: &str = "lcp-0";
const GAS: Option<u64> = Some(3_000_000);

/// 21,000 + 4 per zero and 16 per non-zero calldata byte.
pub(crate) fn intrinsic(data: &[u8]) -> u64 {
    21_000
        + data
            .iter()
            .map(|b| if *b == 0 { 4u64 } else { 16 })
            .sum::<u64>()
}

/// Sends `call` to `to`; returns (gasUsed, execution gas).
pub(crate) async fn measured<T: SolCall>(
    sender: &mut Sender,
    to: Address,
    call: T,
) -> anyhow::Result<(u64, u64)> {
    let data = call.abi_encode();
    let mined = sender.call(to, call, GAS).await?;
    Ok((mined.gas, mined.gas.saturating_sub(intrinsic(&data))))
}

fn height(h: Height) -> LCPClient::Height {
    LCPClient::Height {
        revisionNumber: h.revision_number,
        revisionHeight: h.revision_height,
    }
}

/// Deploys an LCP client (handler = the sender) at the devnet's time `now` and measures it.
pub(crate) async fn measure(
    sender: &mut Sender,
    now: u64,
    gas: &mut super::bench_gas::Gas,
) -> anyhow::Result<()> {
    let ca = SimulationCa::generate(now - 86_400, now + 365 * 86_400)?;
    let attestation = sender
        .deploy(&LCPAttestation::BYTECODE, vec![], None)
        .await?;
    let client = sender
        .deploy(
            &LCPClient::BYTECODE,
            LCPClient::constructorCall {
                handler_: sender.address(),
                attestation_: attestation,
                rootCert: ca.root_der().to_vec().into(),
                developmentMode_: false,
            }
            .abi_encode(),
            None,
        )
        .await?;

    let h1 = Height::new(1, 100);
    let s1 = StateId([0x11; 32]);
    let ts1 = (now - 60) * 1_000_000_000;
    let cs = wire::ClientState {
        mrenclave: MRENCLAVE.to_vec(),
        key_expiration: 604_800,
        latest_height: Some(wire::ProtoHeight {
            revision_number: h1.revision_number,
            revision_height: h1.revision_height,
        }),
        ..Default::default()
    };
    sender
        .call(
            client,
            LCPClient::initializeClientCall {
                clientId: CLIENT_ID.into(),
                clientState: wire::any(wire::CLIENT_STATE_URL, &cs).into(),
                consensusState: wire::any(
                    wire::CONSENSUS_STATE_URL,
                    &wire::ConsensusState {
                        state_id: s1.0.to_vec(),
                        timestamp: ts1,
                    },
                )
                .into(),
            },
            GAS,
        )
        .await?;

    // Two keys: the first registration verifies the signing certificate, the second finds it cached.
    let mut keys = vec![];
    for names in [
        ("lcpRegisterEnclaveKey", "lcpRegisterEnclaveKey_execution"),
        (
            "lcpRegisterEnclaveKeyKnownCert",
            "lcpRegisterEnclaveKeyKnownCert_execution",
        ),
    ] {
        let key = EnclaveKey::generate();
        let report = ca.simulate(key.address(), None, MRENCLAVE, now, false)?;
        let (g, e) = measured(
            sender,
            client,
            LCPClient::registerEnclaveKeyCall {
                clientId: CLIENT_ID.into(),
                message: LCPClient::RegisterEnclaveKeyMessage {
                    report: report.avr.clone(),
                    signature: report.signature.clone().into(),
                    signingCert: report.signing_cert.clone().into(),
                    operatorSignature: Bytes::new(),
                },
            },
        )
        .await
        .context(names.0)?;
        insert(gas, names, g, e);
        keys.push(key);
    }
    let key = keys.first().context("no key")?;

    let h2 = Height::new(1, 101);
    let s2 = StateId([0x22; 32]);
    let ts2 = (now - 30) * 1_000_000_000;
    let update = ProxyMessage::UpdateState(UpdateStateMessage {
        prev: Some((h1, s1)),
        post_height: h2,
        post_state_id: s2,
        timestamp_ns: u128::from(ts2),
        context: ValidationContext::TrustingPeriod(TrustingPeriodContext {
            untrusted_header_timestamp_ns: u128::from(ts2),
            trusted_state_timestamp_ns: u128::from(ts1),
            trusting_period_ns: 1_209_600_000_000_000,
            clock_drift_ns: 5_000_000_000,
        }),
        emitted_states: vec![],
    })
    .encode();
    let sig = key.sign(&update)?.to_vec();
    let (g, e) = measured(
        sender,
        client,
        LCPClient::updateClientCall {
            clientId: CLIENT_ID.into(),
            clientMessage: wire::any(
                wire::UPDATE_CLIENT_URL,
                &wire::UpdateClientMessage {
                    proxy_message: update,
                    signatures: vec![sig],
                },
            )
            .into(),
        },
    )
    .await?;
    insert(gas, ("lcpUpdateClient", "lcpUpdateClient_execution"), g, e);

    // A channel end's commitment (membership) and a packet receipt's absence, at h2.
    let path = b"channelEnds/ports/transfer/channels/channel-0".to_vec();
    let value = vec![0x5a; 48];
    let member = ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
        b"ibc".to_vec(),
        path.clone(),
        &value,
        h2,
        s2,
    ))
    .encode();
    let proof = kh_lcp::CommitmentProofs {
        signatures: vec![key.sign(&member)?.to_vec()],
        message: member,
    }
    .encode();
    let (g, e) = measured(
        sender,
        client,
        LCPClient::verifyMembershipCall {
            clientId: CLIENT_ID.into(),
            height: height(h2),
            _2: 0,
            _3: 0,
            proof: proof.into(),
            prefix: Bytes::from_static(b"ibc"),
            path: path.into(),
            value: value.into(),
        },
    )
    .await?;
    insert(
        gas,
        ("lcpVerifyMembership", "lcpVerifyMembership_execution"),
        g,
        e,
    );

    let absent_path = b"receipts/ports/transfer/channels/channel-0/sequences/2".to_vec();
    let absent = ProxyMessage::VerifyMembership(VerifyMembershipMessage {
        prefix: b"ibc".to_vec(),
        path: absent_path.clone(),
        value: None,
        height: h2,
        state_id: s2,
    })
    .encode();
    let proof = kh_lcp::CommitmentProofs {
        signatures: vec![key.sign(&absent)?.to_vec()],
        message: absent,
    }
    .encode();
    let (g, e) = measured(
        sender,
        client,
        LCPClient::verifyNonMembershipCall {
            clientId: CLIENT_ID.into(),
            height: height(h2),
            _2: 0,
            _3: 0,
            proof: proof.into(),
            prefix: Bytes::from_static(b"ibc"),
            path: absent_path.into(),
        },
    )
    .await?;
    insert(
        gas,
        ("lcpVerifyNonMembership", "lcpVerifyNonMembership_execution"),
        g,
        e,
    );
    Ok(())
}

fn insert(
    gas: &mut super::bench_gas::Gas,
    names: (&'static str, &'static str),
    used: u64,
    execution: u64,
) {
    gas.insert(names.0, used);
    gas.insert(names.1, execution);
}
