//! Two ledgers for IBC tests and benches: each its own in-memory network (a notary and two host
//! operators, PartyA and PartyB, each node on its own database) running the `ibc-host` app
//! with its own chain id and the ping app. [`Side::submit`] applies IBC messages through
//! `ibc.host.submit` on PartyA (PartyB co-signs by re-executing them); the relayer code here
//! builds the messages from the other side's proofs, fetched from PartyB's node (the other
//! operator's copy of the store).
#![allow(dead_code, unreachable_pub, deprecated, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ibc_core::primitives::proto::Any;
use ibc_proto::ibc::core::client::v1::{Height as RawHeight, MsgCreateClient, MsgUpdateClient};
use kh_elc::LedgerHeader;
use kh_ibc_ledger::*;
use kh_ledger::*;
use prost::{Message, Name};

pub mod handshake;

pub const WAIT: Duration = Duration::from_secs(60);
pub const SIGNER: &str = "relayer";
const NAMES: [&str; 3] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
];

pub fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

pub fn h(height: u64) -> Option<RawHeight> {
    Some(RawHeight {
        revision_number: 0,
        revision_height: height,
    })
}

/// One ledger: nodes 0 (notary), 1 and 2 (host operators).
pub struct Side {
    pub chain_id: String,
    pub keys: Vec<(PartyName, KeyPair)>,
    pub nodes: Vec<Node>,
    pub hosts: Vec<Arc<IbcHostApp>>,
}

impl Side {
    pub async fn new(chain_id: &str, urls: &[String]) -> Self {
        Self::with_lcp_root(chain_id, urls, None).await
    }

    /// A ledger whose host runs LCP clients trusting `lcp_root` (DER), if given.
    pub async fn with_lcp_root(chain_id: &str, urls: &[String], lcp_root: Option<Vec<u8>>) -> Self {
        let keys: Vec<(PartyName, KeyPair)> = NAMES
            .iter()
            .map(|n| (n.parse().unwrap(), KeyPair::generate()))
            .collect();
        let parties: Vec<Party> = keys
            .iter()
            .map(|(n, k)| Party {
                name: n.clone(),
                owning_key: k.public(),
            })
            .collect();
        let params = NetworkParameters {
            notary: parties[0].clone(),
            nodes: parties,
            max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
            notary_validating: false,
            validators: vec![],
        };
        let transport = InMemoryNetwork::new();
        let mut nodes = vec![];
        let mut hosts = vec![];
        for (i, (name, key)) in keys.iter().enumerate() {
            let host = Arc::new(match &lcp_root {
                Some(root) => IbcHostApp::with_lcp_attestation_root(chain_id, root.clone()),
                None => IbcHostApp::new(chain_id),
            });
            let ping = PingApp::new(&host);
            let config = NodeConfig {
                name: name.clone(),
                key: key.clone(),
                database_url: urls[i].clone(),
                role: if i == 0 {
                    NodeRole::Notary
                } else {
                    NodeRole::Regular
                },
                network: params.clone(),
                apps: vec![host.clone() as Arc<dyn App>, ping as Arc<dyn App>],
                flow_timeout: DEFAULT_FLOW_TIMEOUT,
                failpoint: None,
            };
            let node = Node::open(config, transport.clone()).await.unwrap();
            transport.register(name.clone(), node.receiver());
            nodes.push(node);
            hosts.push(host);
        }
        let side = Self {
            chain_id: chain_id.into(),
            keys,
            nodes,
            hosts,
        };
        side.run(
            1,
            GENESIS_FLOW,
            serde_json::json!({"operators": ["PartyA", "PartyB"]}),
        )
        .await
        .unwrap();
        side
    }

    pub fn trust(&self) -> HostTrust {
        HostTrust {
            notary: self.keys[0].1.public(),
            operators: vec![self.keys[1].1.public(), self.keys[2].1.public()],
        }
    }

    pub async fn run(
        &self,
        node: usize,
        flow: &str,
        args: serde_json::Value,
    ) -> Result<(), String> {
        let n = &self.nodes[node];
        let id = n.start_flow(FlowStart::new(flow, args)).await.unwrap();
        match n.wait_flow(id, WAIT).await.unwrap() {
            FlowStatus::Completed { .. } => Ok(()),
            FlowStatus::Failed { reason } => Err(reason),
            other => Err(format!("{other:?}")),
        }
    }

    /// Applies `messages` as one host transaction (PartyA builds it, PartyB co-signs).
    pub async fn submit(&self, messages: Vec<Any>) -> Result<u64, String> {
        self.run(1, SUBMIT_FLOW, SubmitArgs::of(&messages)).await?;
        Ok(self.height().await)
    }

    /// Sends a ping from the ping app.
    pub async fn ping(&self, args: serde_json::Value) -> Result<u64, String> {
        self.run(1, PING_SEND_FLOW, args).await?;
        Ok(self.height().await)
    }

    pub async fn height(&self) -> u64 {
        self.hosts[1].height(self.nodes[1].hub()).await.unwrap()
    }

    /// The value at `key` and its proof (bytes) at `height`, from PartyB's node.
    pub async fn proof(&self, key: &str, height: u64) -> (Option<Vec<u8>>, Vec<u8>) {
        let (value, proof) = self.hosts[2]
            .proof(self.nodes[2].hub(), key.as_bytes(), height)
            .await
            .unwrap();
        (value, proof.to_bytes())
    }

    pub async fn value(&self, key: &str) -> Option<Vec<u8>> {
        let height = self.height().await;
        self.proof(key, height).await.0
    }

    pub async fn host_proof(&self, height: u64) -> HostStateProof {
        self.hosts[2]
            .host_state_proof(self.nodes[2].hub(), height)
            .await
            .unwrap()
    }

    /// `MsgCreateClient` of this ledger at `height`, for the other side.
    pub async fn create_client(&self, height: u64) -> Any {
        let proof = self.host_proof(height).await;
        let (client, consensus) = LedgerClientState::from_host_proof(
            &self.chain_id,
            self.trust(),
            &proof,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(client.inner.latest_height, height);
        any(&MsgCreateClient {
            client_state: Some(client.into()),
            consensus_state: Some(consensus.into()),
            signer: SIGNER.into(),
        })
    }

    /// `MsgUpdateClient` of `client_id` (a client of this ledger) from `from` to `to`.
    pub async fn update(&self, client_id: &str, from: u64, to: u64) -> Any {
        let mut proofs = vec![];
        for height in from + 1..=to {
            proofs.push(self.host_proof(height).await);
        }
        let header = LedgerHeader {
            trusted_height: from,
            proofs,
        };
        any(&MsgUpdateClient {
            client_id: client_id.into(),
            client_message: Some(header_any(&header)),
            signer: SIGNER.into(),
        })
    }

    pub async fn shutdown(self) {
        for n in &self.nodes {
            n.shutdown();
        }
    }
}

/// A relayer between two ledgers: the clients each holds of the other and how far each is
/// updated.
pub struct Relay {
    pub a: Side,
    pub b: Side,
    /// Client id on A (of B) and on B (of A).
    pub client_on_a: String,
    pub client_on_b: String,
    /// The latest height of B known to A's client, and of A to B's.
    pub b_on_a: u64,
    pub a_on_b: u64,
}

pub const CLIENT_0: &str = "kh-ledger-0";

impl Relay {
    /// Two ledgers, each with a client of the other (created from height 1 of the other).
    pub async fn new(urls: &[String]) -> Self {
        let a = Side::new("ledger-a", &urls[..3]).await;
        let b = Side::new("ledger-b", &urls[3..6]).await;
        // Height 1 on each side: the host's own bookkeeping only (no message yet).
        assert_eq!(a.submit(vec![]).await.unwrap(), 1);
        assert_eq!(b.submit(vec![]).await.unwrap(), 1);
        a.submit(vec![b.create_client(1).await]).await.unwrap();
        b.submit(vec![a.create_client(1).await]).await.unwrap();
        Self {
            a,
            b,
            client_on_a: CLIENT_0.into(),
            client_on_b: CLIENT_0.into(),
            b_on_a: 1,
            a_on_b: 1,
        }
    }

    /// The update of A's client of B from what it holds to B's latest height (`None`: already
    /// there), and that height.
    pub async fn update_on_a(&mut self) -> (Option<Any>, u64) {
        let to = self.b.height().await;
        let from = client_latest(&self.a, &self.client_on_a).await;
        self.b_on_a = to;
        if to == from {
            return (None, to);
        }
        (Some(self.b.update(&self.client_on_a, from, to).await), to)
    }

    pub async fn update_on_b(&mut self) -> (Option<Any>, u64) {
        let to = self.a.height().await;
        let from = client_latest(&self.b, &self.client_on_b).await;
        self.a_on_b = to;
        if to == from {
            return (None, to);
        }
        (Some(self.a.update(&self.client_on_b, from, to).await), to)
    }
}

/// The latest height `side`'s client `client_id` holds (read from its store).
pub async fn client_latest(side: &Side, client_id: &str) -> u64 {
    let bytes = side
        .value(&format!("clients/{client_id}/clientState"))
        .await
        .unwrap();
    let any = <Any as Message>::decode(bytes.as_slice()).unwrap();
    LedgerClientState::try_from(any)
        .unwrap()
        .inner
        .latest_height
}

/// `[update?, msg]`.
pub fn with_update(update: Option<Any>, msg: Any) -> Vec<Any> {
    update.into_iter().chain(std::iter::once(msg)).collect()
}
