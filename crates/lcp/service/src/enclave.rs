//! The enclave runtime (simulated TEE): the code that runs in the enclave process. It holds the
//! sealing capability of its build, generates keys inside, unseals a key only to sign with it,
//! runs the ELCs and signs their results. It keeps no state between calls: the host stores the
//! sealed keys and the clients (the state ids in the signed messages make a host that feeds a
//! changed client state detectable by every LCP client).

use std::io::{Read, Write};
use std::time::Duration;

use alloy_primitives::Address;
use kh_lcp::{
    EnclaveKey, ProxyMessage, TrustingPeriodContext, UpdateStateMessage, ValidationContext,
    recover_signer,
};

use crate::elc::{self, ElcOutput};
use crate::protocol::{Request, Response, SignedMessage, read_frame, write_frame};
use crate::seal::Sealer;

/// Largest number of messages aggregated at once.
pub const MAX_AGGREGATE: usize = 1024;

/// The enclave.
#[derive(Debug)]
pub struct Enclave {
    sealer: Sealer,
}

impl Enclave {
    /// An enclave with the sealing capability of its build.
    pub fn new(sealer: Sealer) -> Self {
        Enclave { sealer }
    }

    /// Serves requests from `r` until it closes, answering on `w`.
    pub fn serve(&self, mut r: impl Read, mut w: impl Write) -> std::io::Result<()> {
        while let Some(req) = read_frame::<Request>(&mut r)? {
            let resp = self.handle(req);
            write_frame(&mut w, &resp)?;
        }
        Ok(())
    }

    /// Handles one request.
    pub fn handle(&self, req: Request) -> Response {
        match self.try_handle(req) {
            Ok(r) => r,
            Err(e) => Response::Error(e),
        }
    }

    fn key(&self, sealed: &[u8]) -> Result<EnclaveKey, String> {
        let secret = self.sealer.unseal(sealed).map_err(|e| e.to_string())?;
        let secret: [u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| "sealed key has the wrong length".to_owned())?;
        EnclaveKey::from_secret(&secret).map_err(|e| e.to_string())
    }

    fn sign(
        &self,
        sealed: &[u8],
        out: Result<ElcOutput, elc::ElcError>,
        changes_client: bool,
    ) -> Result<Response, String> {
        let key = self.key(sealed)?;
        let out = out.map_err(|e| e.to_string())?;
        let message = out.message.encode();
        let signature = key.sign(&message).map_err(|e| e.to_string())?.to_vec();
        Ok(Response::Signed {
            client: changes_client.then_some(out.client),
            signed: SignedMessage { message, signature },
            signer: key.address(),
        })
    }

    fn try_handle(&self, req: Request) -> Result<Response, String> {
        match req {
            Request::Info => Ok(Response::Info {
                mrenclave: self.sealer.mrenclave(),
            }),
            Request::GenerateKey => {
                let key = EnclaveKey::generate();
                let sealed = self
                    .sealer
                    .seal(&key.secret_bytes())
                    .map_err(|e| e.to_string())?;
                Ok(Response::Key {
                    address: key.address(),
                    sealed,
                })
            }
            Request::CreateClient {
                key,
                client_type,
                client_state,
                consensus_state,
            } => self.sign(
                &key,
                elc::create_client(&client_type, &client_state, &consensus_state),
                true,
            ),
            Request::UpdateClient {
                key,
                client,
                header,
                now_ns,
            } => self.sign(
                &key,
                elc::update_client(&client, &header, Duration::from_nanos(now_ns)),
                true,
            ),
            Request::VerifyState {
                key,
                client,
                height,
                proof,
                path,
                value,
            } => self.sign(
                &key,
                elc::verify_state(&client, height, &proof, &path, value.as_deref()),
                false,
            ),
            Request::Misbehaviour {
                key,
                client,
                evidence,
                now_ns,
            } => self.sign(
                &key,
                elc::submit_misbehaviour(&client, &evidence, Duration::from_nanos(now_ns)),
                true,
            ),
            Request::Aggregate { key, messages } => {
                let key = self.key(&key)?;
                let message = aggregate(key.address(), &messages)?.encode();
                let signature = key.sign(&message).map_err(|e| e.to_string())?.to_vec();
                Ok(Response::Signed {
                    client: None,
                    signed: SignedMessage { message, signature },
                    signer: key.address(),
                })
            }
        }
    }
}

/// Combines consecutive UpdateState messages, each signed by `signer`, into one: the first's
/// previous state, the last's post state and time, all emitted states, and the strictest
/// trusting-period context (latest header time, earliest trusted time, shortest period and
/// drift).
pub fn aggregate(signer: Address, messages: &[SignedMessage]) -> Result<ProxyMessage, String> {
    if messages.len() < 2 {
        return Err("aggregation needs at least two messages".to_owned());
    }
    if messages.len() > MAX_AGGREGATE {
        return Err(format!("more than {MAX_AGGREGATE} messages"));
    }
    let mut updates: Vec<UpdateStateMessage> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let by = recover_signer(&m.message, &m.signature).map_err(|e| e.to_string())?;
        if by != signer {
            return Err(format!("message {i} is signed by {by}, not by {signer}"));
        }
        match ProxyMessage::decode(&m.message).map_err(|e| e.to_string())? {
            ProxyMessage::UpdateState(u) => updates.push(u),
            other => {
                return Err(format!(
                    "message {i} has type {}, not UpdateState",
                    other.message_type()
                ));
            }
        }
    }
    for (i, w) in updates.windows(2).enumerate() {
        if w[1].prev != Some((w[0].post_height, w[0].post_state_id)) {
            return Err(format!(
                "message {} does not continue from message {i}'s post state",
                i + 1
            ));
        }
    }
    let mut context: Option<TrustingPeriodContext> = None;
    for u in &updates {
        if let ValidationContext::TrustingPeriod(c) = u.context {
            context = Some(match context {
                None => c,
                Some(a) => TrustingPeriodContext {
                    untrusted_header_timestamp_ns: a
                        .untrusted_header_timestamp_ns
                        .max(c.untrusted_header_timestamp_ns),
                    trusted_state_timestamp_ns: a
                        .trusted_state_timestamp_ns
                        .min(c.trusted_state_timestamp_ns),
                    trusting_period_ns: a.trusting_period_ns.min(c.trusting_period_ns),
                    clock_drift_ns: a.clock_drift_ns.min(c.clock_drift_ns),
                },
            });
        }
    }
    let first = &updates[0];
    let last = &updates[updates.len() - 1];
    Ok(ProxyMessage::UpdateState(UpdateStateMessage {
        prev: first.prev,
        post_height: last.post_height,
        post_state_id: last.post_state_id,
        timestamp_ns: last.timestamp_ns,
        context: context.map_or(ValidationContext::Empty, ValidationContext::TrustingPeriod),
        emitted_states: updates
            .iter()
            .flat_map(|u| u.emitted_states.iter().cloned())
            .collect(),
    }))
}
