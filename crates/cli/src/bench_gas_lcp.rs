//! The LCP client's part of `kakehashi bench gas`: the Solidity `LCPClient` (with its
//! `LCPAttestation`) deployed on a devnet, called directly by the account it names as handler,
//! with a fresh simulation authority (RSA-2048 root and signing certificate), reports and enclave
//! keys made by kh-lcp at the devnet's time.
//!
//! Figures: `lcpRegisterEnclaveKey` (first registration: the signing certificate is checked
//! against the root), `lcpRegisterEnclaveKeyKnownCert` (a second key, certificate cached),
//! `lcpUpdateClient` (UpdateState with a trusting-period context), `lcpVerifyMembership`,
//! `lcpVerifyNonMembership` (a transaction calling the view), each the transaction's
//! `gasUsed`; the `*_execution` figures subtract the intrinsic gas (21,000 + calldata, Cancun):
//! the client's own work, every storage slot cold, as on chain.
//!
//! lcp-solidity's published figures come from a Forge test that registers, updates and verifies
//! in one transaction, so the slots an earlier call touched (the client, the key, the consensus
//! state just written) are warm for the later ones. The `*_sameTx` figures reproduce that: the
//! same calls made by [`LCPGasProbe`] in one transaction on a second client (the probe is its
//! handler), each the gas of its CALL (after a first call made the client's account warm).

use alloy_primitives::{Address, Bytes};
use alloy_sol_types::{SolCall, SolConstructor};
use anyhow::Context;
use kh_contracts::{LCPAttestation, LCPClient, LCPGasProbe};
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

/// The fixed scenario of both measurements: the client's initial state and the update.
struct Scenario {
    h1: Height,
    s1: StateId,
    ts1: u64,
    h2: Height,
    s2: StateId,
    ts2: u64,
}

impl Scenario {
    fn new(now: u64) -> Self {
        Scenario {
            h1: Height::new(1, 100),
            s1: StateId([0x11; 32]),
            ts1: (now - 60) * 1_000_000_000,
            h2: Height::new(1, 101),
            s2: StateId([0x22; 32]),
            ts2: (now - 30) * 1_000_000_000,
        }
    }

    fn initialize(&self) -> LCPClient::initializeClientCall {
        let cs = wire::ClientState {
            mrenclave: MRENCLAVE.to_vec(),
            key_expiration: 604_800,
            latest_height: Some(wire::ProtoHeight {
                revision_number: self.h1.revision_number,
                revision_height: self.h1.revision_height,
            }),
            ..Default::default()
        };
        LCPClient::initializeClientCall {
            clientId: CLIENT_ID.into(),
            clientState: wire::any(wire::CLIENT_STATE_URL, &cs).into(),
            consensusState: wire::any(
                wire::CONSENSUS_STATE_URL,
                &wire::ConsensusState {
                    state_id: self.s1.0.to_vec(),
                    timestamp: self.ts1,
                },
            )
            .into(),
        }
    }

    /// UpdateState h1 -> h2 with a trusting-period context, signed by `key`.
    fn update(&self, key: &EnclaveKey) -> anyhow::Result<LCPClient::updateClientCall> {
        let update = ProxyMessage::UpdateState(UpdateStateMessage {
            prev: Some((self.h1, self.s1)),
            post_height: self.h2,
            post_state_id: self.s2,
            timestamp_ns: u128::from(self.ts2),
            context: ValidationContext::TrustingPeriod(TrustingPeriodContext {
                untrusted_header_timestamp_ns: u128::from(self.ts2),
                trusted_state_timestamp_ns: u128::from(self.ts1),
                trusting_period_ns: 1_209_600_000_000_000,
                clock_drift_ns: 5_000_000_000,
            }),
            emitted_states: vec![],
        })
        .encode();
        let sig = key.sign(&update)?.to_vec();
        Ok(LCPClient::updateClientCall {
            clientId: CLIENT_ID.into(),
            clientMessage: wire::any(
                wire::UPDATE_CLIENT_URL,
                &wire::UpdateClientMessage {
                    proxy_message: update,
                    signatures: vec![sig],
                },
            )
            .into(),
        })
    }

    /// A channel end's commitment at h2, signed by `key`.
    fn membership(&self, key: &EnclaveKey) -> anyhow::Result<LCPClient::verifyMembershipCall> {
        let path = b"channelEnds/ports/transfer/channels/channel-0".to_vec();
        let value = vec![0x5a; 48];
        let member = ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
            b"ibc".to_vec(),
            path.clone(),
            &value,
            self.h2,
            self.s2,
        ))
        .encode();
        let proof = kh_lcp::CommitmentProofs {
            signatures: vec![key.sign(&member)?.to_vec()],
            message: member,
        }
        .encode();
        Ok(LCPClient::verifyMembershipCall {
            clientId: CLIENT_ID.into(),
            height: height(self.h2),
            _2: 0,
            _3: 0,
            proof: proof.into(),
            prefix: Bytes::from_static(b"ibc"),
            path: path.into(),
            value: value.into(),
        })
    }

    /// A packet receipt's absence at h2, signed by `key`.
    fn absence(&self, key: &EnclaveKey) -> anyhow::Result<LCPClient::verifyNonMembershipCall> {
        let path = b"receipts/ports/transfer/channels/channel-0/sequences/2".to_vec();
        let absent = ProxyMessage::VerifyMembership(VerifyMembershipMessage {
            prefix: b"ibc".to_vec(),
            path: path.clone(),
            value: None,
            height: self.h2,
            state_id: self.s2,
        })
        .encode();
        let proof = kh_lcp::CommitmentProofs {
            signatures: vec![key.sign(&absent)?.to_vec()],
            message: absent,
        }
        .encode();
        Ok(LCPClient::verifyNonMembershipCall {
            clientId: CLIENT_ID.into(),
            height: height(self.h2),
            _2: 0,
            _3: 0,
            proof: proof.into(),
            prefix: Bytes::from_static(b"ibc"),
            path: path.into(),
        })
    }
}

/// A fresh key and its registration from a report of `ca` attested at `now`.
fn registration(
    ca: &SimulationCa,
    now: u64,
) -> anyhow::Result<(EnclaveKey, LCPClient::registerEnclaveKeyCall)> {
    let key = EnclaveKey::generate();
    let report = ca.simulate(key.address(), None, MRENCLAVE, now, false)?;
    let call = LCPClient::registerEnclaveKeyCall {
        clientId: CLIENT_ID.into(),
        message: LCPClient::RegisterEnclaveKeyMessage {
            report: report.avr.clone(),
            signature: report.signature.clone().into(),
            signingCert: report.signing_cert.clone().into(),
            operatorSignature: Bytes::new(),
        },
    };
    Ok((key, call))
}

async fn deploy_client(
    sender: &mut Sender,
    handler: Address,
    attestation: Address,
    ca: &SimulationCa,
) -> anyhow::Result<Address> {
    sender
        .deploy(
            &LCPClient::BYTECODE,
            LCPClient::constructorCall {
                handler_: handler,
                attestation_: attestation,
                rootCert: ca.root_der().to_vec().into(),
                developmentMode_: false,
            }
            .abi_encode(),
            None,
        )
        .await
}

/// Deploys an LCP client (handler = the sender) at the devnet's time `now` and measures it,
/// each call its own transaction; then the same calls on a second client in one transaction
/// through [`LCPGasProbe`] (the `*_sameTx` figures, see the module doc).
pub(crate) async fn measure(
    sender: &mut Sender,
    now: u64,
    gas: &mut super::bench_gas::Gas,
) -> anyhow::Result<()> {
    let ca = SimulationCa::generate(now - 86_400, now + 365 * 86_400)?;
    let attestation = sender
        .deploy(&LCPAttestation::BYTECODE, vec![], None)
        .await?;
    let client = deploy_client(sender, sender.address(), attestation, &ca).await?;
    let sc = Scenario::new(now);
    sender.call(client, sc.initialize(), GAS).await?;

    // Two keys: the first registration verifies the signing certificate, the second finds it cached.
    let mut keys = vec![];
    for names in [
        ("lcpRegisterEnclaveKey", "lcpRegisterEnclaveKey_execution"),
        (
            "lcpRegisterEnclaveKeyKnownCert",
            "lcpRegisterEnclaveKeyKnownCert_execution",
        ),
    ] {
        let (key, call) = registration(&ca, now)?;
        let (g, e) = measured(sender, client, call).await.context(names.0)?;
        insert(gas, names, g, e);
        keys.push(key);
    }
    let key = keys.first().context("no key")?;
    let (g, e) = measured(sender, client, sc.update(key)?).await?;
    insert(gas, ("lcpUpdateClient", "lcpUpdateClient_execution"), g, e);
    let (g, e) = measured(sender, client, sc.membership(key)?).await?;
    insert(
        gas,
        ("lcpVerifyMembership", "lcpVerifyMembership_execution"),
        g,
        e,
    );
    let (g, e) = measured(sender, client, sc.absence(key)?).await?;
    insert(
        gas,
        ("lcpVerifyNonMembership", "lcpVerifyNonMembership_execution"),
        g,
        e,
    );

    // The same sequence in one transaction (as lcp-solidity's Forge test runs it): a client
    // whose handler is the probe; a first call makes the client's account warm.
    let probe = sender.deploy(&LCPGasProbe::BYTECODE, vec![], None).await?;
    let client = deploy_client(sender, probe, attestation, &ca).await?;
    sender
        .call(
            probe,
            LCPGasProbe::runCall {
                target: client,
                calls: vec![sc.initialize().abi_encode().into()],
            },
            GAS,
        )
        .await?;
    let (first, register_first) = registration(&ca, now)?;
    let (_, register_known) = registration(&ca, now)?;
    let calls = vec![
        LCPClient::getLatestHeightCall {
            clientId: CLIENT_ID.into(),
        }
        .abi_encode()
        .into(),
        register_first.abi_encode().into(),
        register_known.abi_encode().into(),
        sc.update(&first)?.abi_encode().into(),
        sc.membership(&first)?.abi_encode().into(),
        sc.absence(&first)?.abi_encode().into(),
    ];
    let mined = sender
        .call(
            probe,
            LCPGasProbe::runCall {
                target: client,
                calls,
            },
            Some(6_000_000),
        )
        .await?;
    let used = mined.event::<LCPGasProbe::LCPGasProbeMeasured>()?.used;
    for (i, name) in [
        "lcpRegisterEnclaveKey_sameTx",
        "lcpRegisterEnclaveKeyKnownCert_sameTx",
        "lcpUpdateClient_sameTx",
        "lcpVerifyMembership_sameTx",
        "lcpVerifyNonMembership_sameTx",
    ]
    .into_iter()
    .enumerate()
    {
        let g = used.get(i + 1).context("probe result missing")?;
        gas.insert(name, u64::try_from(*g)?);
    }
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
