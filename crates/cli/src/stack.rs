//! The whole stack in one process on embedded defaults — the EVM devnet (IBC handler, ping app
//! and LCP client deployed), the ledger network (five nodes over gRPC with mutual TLS, its IBC
//! host operated by PartyA and PartyB), LCP in simulation (its gRPC service with mutual TLS) —
//! and a relayer path `evm-ledger` between them with clients, connection and channel
//! established. `kakehashi run` and `kakehashi demo ibc` start it.
//!
//! Everything the components need is written into the data directory as an operator would
//! write it (`relayer.toml`, the relayer's keystore, the ledger network directory, the LCP
//! node's home and certificates), so the standalone commands work against the running stack.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use anyhow::Context;
use kh_contracts::PingApp;
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use kh_lcp_service::enclave::Enclave;
use kh_lcp_service::seal::{PlatformSecret, Sealer};
use kh_lcp_service::service::{self, ServiceHandle};
use kh_lcp_service::{EnclaveHandle, LcpNode};
use kh_ledger_node::{NetworkCa, Permission, write_secret};
use kh_relayer::RelayerConfig;
use kh_relayer::evm::{FailoverRpc, SubmitPolicy, Submitter};
use kh_relayer::path::RelayPath;
use serde_json::json;

use crate::devnet_ledger::RunningNode;

/// The path's name in `relayer.toml`.
pub(crate) const PATH: &str = "evm-ledger";

/// Where and how to start.
#[derive(Debug, Clone)]
pub(crate) struct StackOptions {
    /// The data directory (must be empty or absent).
    pub(crate) data: PathBuf,
    /// JSON-RPC address of the EVM devnet.
    pub(crate) evm_rpc: SocketAddr,
    /// EVM block interval.
    pub(crate) block_time: Duration,
    /// The relayer's metrics and health address.
    pub(crate) metrics: SocketAddr,
}

/// The running stack.
pub(crate) struct Stack {
    pub(crate) devnet: Devnet,
    pub(crate) ledger: Vec<RunningNode>,
    _lcp: ServiceHandle,
    /// The relayer's configuration (`DATA/relayer.toml`).
    pub(crate) config: RelayerConfig,
    pub(crate) config_path: PathBuf,
    /// The path, set up.
    pub(crate) path: Arc<RelayPath>,
    /// The EVM ping app, and the owner that may ping.
    pub(crate) app: Address,
    pub(crate) owner: Arc<Submitter>,
    pub(crate) ledger_dir: PathBuf,
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Starts every component and sets the path up (a few seconds, most of it the handshakes).
pub(crate) async fn start(opts: &StackOptions) -> anyhow::Result<Stack> {
    let data = &opts.data;
    if data.exists() && std::fs::read_dir(data)?.next().is_some() {
        anyhow::bail!(
            "{} is not empty: the stack starts from scratch (choose another --data)",
            data.display()
        );
    }
    std::fs::create_dir_all(data)?;
    let data = data.canonicalize()?;

    // LCP: the enclave (simulation) measured as this executable, one attested key, the gRPC
    // service with mutual TLS.
    let lcp_home = data.join("lcp");
    std::fs::create_dir_all(lcp_home.join("tls"))?;
    let platform = PlatformSecret::load_or_create(&lcp_home.join("platform-secret"))?;
    let mrenclave = kh_lcp_service::seal::measure(&std::env::current_exe()?)?;
    let enclave = EnclaveHandle::in_process(Enclave::new(Sealer::new(&platform, mrenclave)))?;
    let node = LcpNode::open(&lcp_home, enclave, 7 * 86_400)?;
    node.generate_key(None)?;
    let root_der = node.attestation_root_der();
    let ca = NetworkCa::generate("kakehashi LCP")?;
    let (server, relayer_id) = (ca.issue("lcp")?, ca.issue("relayer")?);
    let tls = lcp_home.join("tls");
    write(&tls.join("root.pem"), &ca.root_pem())?;
    write(&tls.join("relayer.pem"), &relayer_id.cert_pem)?;
    write_secret(&tls.join("relayer-key.pem"), &relayer_id.key_pem)?;
    let lcp = service::serve(
        "127.0.0.1:0".parse()?,
        &server.cert_pem,
        &server.key_pem,
        &ca.root_pem(),
        Arc::new(node),
    )
    .await?;

    // The EVM devnet with the IBC stack, the ping app and the LCP client.
    let devnet = Devnet::start(DevnetConfig {
        rpc_addr: opts.evm_rpc,
        production: BlockProduction::Interval(opts.block_time),
        ..DevnetConfig::default()
    })
    .await
    .context("starting the EVM devnet")?;
    let chain_id = DevnetConfig::default().chain_id;
    let url = format!("http://{}", devnet.rpc_addr());
    let accounts = devnet.dev_accounts().to_vec();
    let owner_key = PrivateKeySigner::from_bytes(&accounts[0].private_key)?;
    let mut sender =
        crate::evm_tx::Sender::connect(&url, owner_key.clone(), Duration::from_secs(60)).await?;
    let deployment = crate::ibc::deploy_stack(&mut sender, "ping").await?;
    crate::ibc::deploy_lcp_client(&mut sender, deployment.handler, &root_der, false).await?;

    // The ledger network: its IBC host trusts LCP's attestation root; the relayer is PartyA's
    // RPC user with flow permission.
    let ledger_dir = data.join("ledger");
    let files = crate::devnet_ledger::init_with(&ledger_dir, false, Some(&root_der))?;
    let ledger_ca = NetworkCa::load(
        &std::fs::read_to_string(ledger_dir.join("root.pem"))?,
        &std::fs::read_to_string(ledger_dir.join("root.key"))?,
    )?;
    let party_a_dir = ledger_dir.join("nodes").join("PartyA");
    kh_ledger_node::add_user(
        &ledger_ca,
        &party_a_dir,
        "PartyA",
        "relayer",
        Permission::Flows,
    )?;
    let mut ledger = vec![];
    for file in files {
        ledger.push(crate::devnet_ledger::start_node(&file, None).await?);
    }
    let (network, _) = kh_ledger_node::NetworkDirectory::read(&ledger_dir)?;
    let (_, party_a) = network.node("PartyA")?;

    // The relayer: its key (dev account 1) in a keystore, its configuration.
    let password = hex::encode(rand::random::<[u8; 16]>());
    write_secret(&data.join("relayer.pass"), &password)?;
    PrivateKeySigner::encrypt_keystore(
        &data,
        &mut rand::rngs::OsRng,
        accounts[1].private_key,
        &password,
        Some("relayer-key.json"),
    )?;
    let config_path = data.join("relayer.toml");
    let evm_addr = devnet.rpc_addr();
    write(
        &config_path,
        &format!(
            r#"# Written by `kakehashi run` / `kakehashi demo ibc` for the stack it started.
[evm]
chain_id = {chain_id}
rpc = ["{url}"]
ws = ["ws://{evm_addr}"]
handler = "{handler}"
confirmations = 1

[evm.signer]
kind = "keystore"
path = "{keystore}"
password_file = "{pass}"

[ledger]
rpc = "{ledger_rpc}"
cert = "{cert}"
key = "{key}"
root_cert = "{root}"

[lcp]
addr = "{lcp_addr}"
cert = "{lcp_cert}"
key = "{lcp_key}"
root_cert = "{lcp_root}"

[paths.{PATH}]
state = "{state}"

[lease]
kind = "file"
path = "{lock}"

[metrics]
listen = "{metrics}"
"#,
            handler = deployment.handler,
            keystore = data.join("relayer-key.json").display(),
            pass = data.join("relayer.pass").display(),
            ledger_rpc = party_a.rpc,
            cert = party_a_dir.join("rpc-relayer.pem").display(),
            key = party_a_dir.join("rpc-relayer.key").display(),
            root = ledger_dir.join("root.pem").display(),
            lcp_addr = lcp.addr,
            lcp_cert = tls.join("relayer.pem").display(),
            lcp_key = tls.join("relayer-key.pem").display(),
            lcp_root = tls.join("root.pem").display(),
            state = data.join("relayer-evm-ledger.json").display(),
            lock = data.join("relayer.lock").display(),
            metrics = opts.metrics,
        ),
    )?;
    let config = RelayerConfig::load(&config_path)?;

    // The ledger's IBC host, then clients, connection and channel.
    let mut path = RelayPath::open(&config, PATH).await?;
    path.ledger
        .run_flow(
            "ibc.host.genesis",
            &json!({"operators": ["PartyA", "PartyB"]}),
        )
        .await
        .context("creating the ledger's IBC host")?;
    path.create_clients().await.context("relayer tx clients")?;
    path.create_connection()
        .await
        .context("relayer tx connection")?;
    path.create_channel().await.context("relayer tx channel")?;

    let rpc = Arc::new(FailoverRpc::new(
        chain_id,
        std::slice::from_ref(&url),
        Duration::from_secs(30),
    )?);
    let owner = Arc::new(Submitter::new(rpc, owner_key, SubmitPolicy::default()));
    Ok(Stack {
        devnet,
        ledger,
        _lcp: lcp,
        config,
        config_path,
        path: Arc::new(path),
        app: deployment.app,
        owner,
        ledger_dir,
    })
}

impl Stack {
    /// The EVM ping app sends `data` on the path's channel; waits for its inclusion and returns
    /// the packet's sequence.
    pub(crate) async fn ping_from_evm(
        &self,
        data: &[u8],
        timeout_height: u64,
    ) -> anyhow::Result<u64> {
        let receipt = self
            .owner
            .submit(
                self.app,
                PingApp::pingCall {
                    channelId: self.path.state.evm.channel_id.clone(),
                    data: data.to_vec().into(),
                    timeoutHeight: PingApp::Height {
                        revisionNumber: 0,
                        revisionHeight: timeout_height,
                    },
                    timeoutTimestamp: 0,
                }
                .abi_encode()
                .into(),
            )
            .await?;
        let sent: kh_contracts::IBCChannelPacket::SendPacket =
            kh_relayer::evm::ibc::event(&receipt, "SendPacket")?;
        Ok(sent.packet.sequence)
    }

    /// The ledger's ping app sends `count` pings of `data` on the path's channel in one host
    /// transaction (PartyA's flow); their sequences.
    pub(crate) async fn ping_from_ledger(
        &self,
        data: &str,
        count: u64,
    ) -> anyhow::Result<Vec<u64>> {
        let tx = self
            .path
            .ledger
            .run_flow(
                "ibc.ping.send",
                &json!({
                    "channel": self.path.state.ledger.channel_id,
                    "data": data,
                    "timeout_height": 1_000_000_000u64,
                    "timeout_timestamp_ms": 0,
                    "count": count,
                }),
            )
            .await?;
        let mut seqs = vec![];
        for e in self.path.ledger.events_of(&tx).await? {
            if e.kind == "send_packet"
                && let Some(seq) = e.attribute("packet_sequence").and_then(|s| s.parse().ok())
            {
                seqs.push(seq);
            }
        }
        Ok(seqs)
    }

    /// Stops the chains' nodes.
    pub(crate) async fn shutdown(self) -> anyhow::Result<()> {
        for n in &self.ledger {
            n.node.shutdown();
        }
        self.devnet.shutdown().await?;
        Ok(())
    }
}
