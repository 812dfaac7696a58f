//! `kakehashi devnet ledger`: a ledger network (Notary, Bank, PartyA, PartyB, Validator) in one
//! process on SQLite, each node with its own mutual-TLS P2P and RPC endpoints on loopback. Writes
//! the network directory (network.json, root.pem, client.pem/.key) into DATA for the
//! `kakehashi ledger --network DATA ...` client commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kh_ledger::{KeyPair, NetworkParameters, Node, NodeConfig, NodeRole, Party, PartyName};
use kh_ledger_node::{
    GrpcTransport, NetworkCa, NetworkDirectory, NodeEndpoints, PeerDirectory, PeerEntry,
    PeerServerHandle, serve_peer, serve_rpc, write_secret,
};

/// The devnet's nodes: legal name and role.
const NODES: [(&str, NodeRole); 5] = [
    ("O=Notary, L=Tokyo, C=JP", NodeRole::Notary),
    ("O=Bank, L=Tokyo, C=JP", NodeRole::Regular),
    ("O=PartyA, L=Tokyo, C=JP", NodeRole::Regular),
    ("O=PartyB, L=Osaka, C=JP", NodeRole::Regular),
    ("O=Validator, L=Tokyo, C=JP", NodeRole::Regular),
];

/// Arguments of `devnet ledger`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory for the node databases, keys and the network directory.
    #[arg(long, default_value = "kakehashi-ledger")]
    data: PathBuf,
}

/// A running in-process ledger network.
pub(crate) struct LedgerDevnet {
    /// The nodes.
    pub(crate) nodes: Vec<Node>,
    _servers: Vec<PeerServerHandle>,
    /// The directory.
    pub(crate) directory: NetworkDirectory,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn node_key(dir: &Path, org: &str) -> anyhow::Result<KeyPair> {
    let path = dir.join("keys").join(format!("{org}.key"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{} is not a 32-byte hex key", path.display()))?;
        return Ok(KeyPair::from_secret(bytes));
    }
    std::fs::create_dir_all(dir.join("keys"))?;
    let key = KeyPair::generate();
    write_secret(&path, &hex::encode(key.secret()))?;
    Ok(key)
}

/// Starts the network in this process and writes its directory.
pub(crate) async fn start(data: &Path) -> anyhow::Result<LedgerDevnet> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let ca = NetworkCa::generate("kakehashi devnet")?;
    let root = ca.root_pem();
    let mut parties = vec![];
    let mut keys = vec![];
    let mut identities = vec![];
    for (name, _) in NODES {
        let name: PartyName = name.parse()?;
        let key = node_key(data, name.organisation())?;
        parties.push(Party {
            name: name.clone(),
            owning_key: key.public(),
        });
        identities.push(ca.issue(&name.to_string())?);
        keys.push(key);
    }
    let network = NetworkParameters {
        notary: parties[0].clone(),
        nodes: parties.clone(),
        max_transaction_size: kh_ledger::DEFAULT_MAX_TRANSACTION_SIZE,
    };
    let mut peers = PeerDirectory::default();
    let mut endpoints = std::collections::BTreeMap::new();
    for (i, p) in parties.iter().enumerate() {
        let (p2p, rpc) = (free_port()?, free_port()?);
        peers.peers.insert(
            p.name.clone(),
            PeerEntry {
                address: p2p,
                cert_der: identities[i].cert_der.clone(),
            },
        );
        endpoints.insert(
            p.name.to_string(),
            NodeEndpoints {
                p2p,
                rpc,
                cert_pem: identities[i].cert_pem.clone(),
            },
        );
    }
    let peers = Arc::new(peers);
    let mut nodes = vec![];
    let mut servers = vec![];
    for (i, (p, (_, role))) in parties.iter().zip(NODES).enumerate() {
        let transport = Arc::new(GrpcTransport::new(peers.clone(), &identities[i], &root));
        let db = data.join(format!("{}.db", p.name.organisation()));
        let config = NodeConfig {
            name: p.name.clone(),
            key: keys[i].clone(),
            database_url: format!("sqlite:{}", db.display()),
            role,
            network: network.clone(),
            failpoint: None,
        };
        let node = Node::open(config, transport)
            .await
            .with_context(|| format!("opening {}", p.name))?;
        let ep = &endpoints[&p.name.to_string()];
        servers.push(
            serve_peer(
                ep.p2p,
                &identities[i],
                &root,
                node.receiver(),
                peers.clone(),
            )
            .await?,
        );
        servers.push(serve_rpc(ep.rpc, &identities[i], &root, node.clone()).await?);
        nodes.push(node);
    }
    let directory = NetworkDirectory {
        network,
        nodes: endpoints,
    };
    directory.write(data, &root, &ca.issue("kakehashi client")?)?;
    Ok(LedgerDevnet {
        nodes,
        _servers: servers,
        directory,
    })
}

/// Runs the ledger network until Ctrl-C / SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let net = start(&args.data).await?;
    println!(
        "kakehashi ledger devnet; network directory: {}",
        args.data.display()
    );
    for (name, ep) in &net.directory.nodes {
        println!("  {name}: rpc {} p2p {}", ep.rpc, ep.p2p);
    }
    println!(
        "try: kakehashi ledger --network {} --node PartyA accounts create alice",
        args.data.display()
    );
    crate::signal::shutdown_signal().await;
    for n in &net.nodes {
        n.shutdown();
    }
    Ok(())
}
