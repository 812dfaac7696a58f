//! `kakehashi devnet ledger`: a ledger network (Notary, Bank, PartyA, PartyB, Validator) on
//! loopback, each node with its own mutual-TLS P2P and RPC endpoints and SQLite database.
//! It writes the network directory into DATA (network.json, root.pem, the root's key root.key,
//! and nodes/<Org>/ with each node's node.toml, identity key, TLS key pair and RPC users — an
//! `admin` user whose certificate is rpc-admin.pem/.key), then runs every node
//! in this process — or, with `--init-only`, stops there so that each node can run as its own
//! process with `kakehashi ledger node --config DATA/nodes/<Org>/node.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kh_ledger::{
    Failpoint, KeyPair, NetworkParameters, Node, NodeConfig, NodeRole, Party, PartyName,
};
use kh_ledger_node::{
    GrpcTransport, NetworkCa, NetworkDirectory, NodeEndpoints, NodeFileConfig, PeerDirectory,
    PeerEntry, PeerServerHandle, RoleName, TlsIdentity, serve_peer, serve_rpc, write_secret,
};

/// The devnet's nodes: legal name and role.
const NODES: [(&str, NodeRole); 5] = [
    ("O=Notary, L=Tokyo, C=JP", NodeRole::Notary),
    ("O=Bank, L=Tokyo, C=JP", NodeRole::Regular),
    ("O=PartyA, L=Tokyo, C=JP", NodeRole::Regular),
    ("O=PartyB, L=Osaka, C=JP", NodeRole::Regular),
    ("O=Validator, L=Tokyo, C=JP", NodeRole::Validator),
];

/// Arguments of `devnet ledger`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory for the network directory, node databases and keys.
    #[arg(long, default_value = "kakehashi-ledger")]
    data: PathBuf,
    /// Only write the network directory and node configs, then exit.
    #[arg(long)]
    init_only: bool,
    /// Make the notary validating (it runs the contracts over whole transactions) instead of
    /// non-validating (uniqueness over a filtered view). Written into the network parameters.
    #[arg(long)]
    validating_notary: bool,
    /// The LCP attestation root certificate (DER file) the IBC host's LCP clients on PartyA and
    /// PartyB trust (copied into DATA; `kakehashi lcp enclave info` prints a node's root).
    #[arg(long)]
    lcp_attestation_root: Option<PathBuf>,
}

/// A free loopback port below Linux's ephemeral range (32768+), so that the outgoing
/// connections of other processes cannot take it between now and the node binding it.
fn free_port() -> anyhow::Result<SocketAddr> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    // Ports handed out by this process stay taken: they are free now, but not yet bound by
    // the nodes they are for.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..4096 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7_919)) % 12_000) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.contains(&port) {
            continue;
        }
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            given.push(port);
            return Ok(l.local_addr()?);
        }
    }
    anyhow::bail!("no free loopback port in 20000-31999")
}

/// Writes the network directory and one node.toml per node (keeps existing keys).
pub(crate) fn init(data: &Path, validating_notary: bool) -> anyhow::Result<Vec<PathBuf>> {
    init_with(data, validating_notary, None)
}

/// [`init`], with the LCP attestation root (DER) the IBC host operators' LCP clients trust.
pub(crate) fn init_with(
    data: &Path,
    validating_notary: bool,
    lcp_attestation_root: Option<&[u8]>,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let data = data.canonicalize()?;
    let lcp_root_file = match lcp_attestation_root {
        Some(der) => {
            let file = data.join("lcp-attestation-root.der");
            std::fs::write(&file, der).with_context(|| format!("writing {}", file.display()))?;
            Some(file)
        }
        None => None,
    };
    let ca = NetworkCa::generate("kakehashi devnet")?;
    let root = ca.root_pem();
    let mut parties = vec![];
    let mut endpoints = std::collections::BTreeMap::new();
    let mut files = vec![];
    for (name, role) in NODES {
        let name: PartyName = name.parse()?;
        let dir = data.join("nodes").join(name.organisation());
        std::fs::create_dir_all(&dir)?;
        let key_path = dir.join("identity.key");
        let key = match std::fs::read_to_string(&key_path) {
            Ok(text) => KeyPair::from_secret(
                hex::decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .with_context(|| format!("{} is not a 32-byte hex key", key_path.display()))?,
            ),
            Err(_) => {
                let key = KeyPair::generate();
                write_secret(&key_path, &hex::encode(key.secret()))?;
                key
            }
        };
        let tls = ca.issue_node(&name)?;
        std::fs::write(dir.join("tls.pem"), &tls.cert_pem)?;
        write_secret(&dir.join("tls.key"), &tls.key_pem)?;
        // A fresh root each init: the node's RPC users start over with one admin.
        let users = dir.join(kh_ledger_node::USERS_FILE);
        if users.exists() {
            std::fs::remove_file(&users)?;
        }
        kh_ledger_node::add_user(
            &ca,
            &dir,
            name.organisation(),
            "admin",
            kh_ledger_node::Permission::Admin,
        )?;
        parties.push(Party {
            name: name.clone(),
            owning_key: key.public(),
        });
        endpoints.insert(
            name.to_string(),
            NodeEndpoints {
                p2p: free_port()?,
                rpc: free_port()?,
                cert_pem: tls.cert_pem.clone(),
            },
        );
        let file = NodeFileConfig {
            name: name.to_string(),
            role: match role {
                NodeRole::Notary => RoleName::Notary,
                NodeRole::Validator => RoleName::Validator,
                NodeRole::Regular => RoleName::Regular,
            },
            database_url: format!("sqlite:{}", dir.join("node.db").display()),
            identity_key: key_path,
            tls_cert: dir.join("tls.pem"),
            tls_key: dir.join("tls.key"),
            network_dir: data.clone(),
            root_cert: None,
            rpc_listen: None,
            p2p_listen: None,
            apps: apps_of(&name),
            flow_timeout_ms: u64::try_from(kh_ledger::DEFAULT_FLOW_TIMEOUT.as_millis())
                .unwrap_or(u64::MAX),
            rpc_users: None,
            failpoint: None,
            // The IBC host's operators.
            lcp_attestation_root: matches!(name.organisation(), "PartyA" | "PartyB")
                .then(|| lcp_root_file.clone())
                .flatten(),
        };
        let path = dir.join("node.toml");
        std::fs::write(&path, toml::to_string_pretty(&file)?)?;
        files.push(path);
    }
    let network = NetworkParameters {
        notary: parties[0].clone(),
        nodes: parties,
        max_transaction_size: kh_ledger::DEFAULT_MAX_TRANSACTION_SIZE,
        notary_validating: validating_notary,
        validators: NODES
            .iter()
            .filter(|(_, role)| *role == NodeRole::Validator)
            .map(|(name, _)| name.parse())
            .collect::<Result<_, _>>()?,
    };
    NetworkDirectory {
        network,
        nodes: endpoints,
    }
    .write(&data, &root)?;
    write_secret(&data.join("root.key"), &ca.key_pem())?;
    Ok(files)
}

/// A running node with its servers.
pub(crate) struct RunningNode {
    pub(crate) node: Node,
    _servers: Vec<PeerServerHandle>,
}

/// Reads and validates a node.toml (a failure is a usage/config error).
/// The apps a devnet node runs: every node the stablecoin; PartyA and PartyB also the shared
/// record (so the Bank shows what a node without an app does with its transactions) and the
/// IBC host (they are its operators).
fn apps_of(name: &PartyName) -> Vec<String> {
    let mut apps: Vec<String> = kh_ledger_node::DEFAULT_APPS
        .iter()
        .map(|s| s.to_string())
        .collect();
    if matches!(name.organisation(), "PartyA" | "PartyB") {
        apps.push(kh_app_record::APP_NAME.to_string());
        apps.push(kh_ibc_ledger::APP_NAME.to_string());
        apps.push(kh_ibc_ledger::PING_APP.to_string());
    }
    apps
}

pub(crate) fn read_config(path: &Path) -> anyhow::Result<NodeFileConfig> {
    NodeFileConfig::read(path).map_err(|e| {
        let reason = format!("{}: {e}", path.display());
        crate::output::UsageError(reason).into()
    })
}

/// Starts one node from its node.toml; `failpoint` overrides the file's.
pub(crate) async fn start_node(
    path: &Path,
    failpoint: Option<Failpoint>,
) -> anyhow::Result<RunningNode> {
    start_node_with(path, failpoint, false).await
}

/// Starts one node from its node.toml; with `standby`, waits for the database's fence first
/// (cold standby). Its P2P and RPC ports are bound only once it holds the fence.
pub(crate) async fn start_node_with(
    path: &Path,
    failpoint: Option<Failpoint>,
    standby: bool,
) -> anyhow::Result<RunningNode> {
    let file = read_config(path)?;
    let (directory, _) = NetworkDirectory::read(&file.network_dir)?;
    let root_path = file.root_cert_path();
    let root = std::fs::read_to_string(&root_path)
        .with_context(|| format!("reading {}", root_path.display()))?;
    let name: PartyName = file.party_name()?;
    let secret = std::fs::read_to_string(&file.identity_key)
        .with_context(|| format!("reading {}", file.identity_key.display()))?;
    let key = KeyPair::from_secret(
        hex::decode(secret.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{} is not a 32-byte hex key", file.identity_key.display()))?,
    );
    let tls = TlsIdentity {
        cert_pem: std::fs::read_to_string(&file.tls_cert)
            .with_context(|| format!("reading {}", file.tls_cert.display()))?,
        cert_der: vec![],
        key_pem: std::fs::read_to_string(&file.tls_key)
            .with_context(|| format!("reading {}", file.tls_key.display()))?,
    };
    let mut peers = PeerDirectory::default();
    for p in &directory.network.nodes {
        let ep = directory
            .nodes
            .get(&p.name.to_string())
            .with_context(|| format!("no endpoints for {}", p.name))?;
        peers.peers.insert(
            p.name.clone(),
            PeerEntry {
                address: ep.p2p,
                cert_der: kh_ledger_node::pem_to_der(&ep.cert_pem)
                    .with_context(|| format!("certificate of {}", p.name))?,
            },
        );
    }
    let peers = Arc::new(peers);
    let mine = directory
        .nodes
        .get(&name.to_string())
        .with_context(|| format!("{name} is not in the network directory"))?
        .clone();
    let config = NodeConfig {
        name: name.clone(),
        key,
        database_url: file.database_url.clone(),
        role: file.role.into(),
        network: directory.network.clone(),
        apps: kh_ledger_node::apps_with(
            &file.apps,
            &kh_ledger_node::AppOptions {
                lcp_attestation_root: match &file.lcp_attestation_root {
                    Some(p) => Some(
                        std::fs::read(p)
                            .with_context(|| format!("lcp_attestation_root {}", p.display()))?,
                    ),
                    None => None,
                },
            },
        )
        .map_err(anyhow::Error::msg)?,
        flow_timeout: std::time::Duration::from_millis(file.flow_timeout_ms),
        failpoint: failpoint.or(file.failpoint.map(Failpoint::from)),
    };
    let transport = Arc::new(GrpcTransport::new(peers.clone(), &tls, &root));
    let node = if standby {
        Node::open_standby(config, transport).await
    } else {
        Node::open(config, transport).await
    }
    .with_context(|| format!("opening {name}"))?;
    let servers = vec![
        serve_peer(
            file.p2p_listen.unwrap_or(mine.p2p),
            &tls,
            &root,
            node.receiver(),
            peers,
        )
        .await?,
        serve_rpc(
            file.rpc_listen.unwrap_or(mine.rpc),
            &tls,
            &root,
            node.clone(),
            kh_ledger_node::RpcUsers::file(file.rpc_users_path()),
        )
        .await?,
    ];
    Ok(RunningNode {
        node,
        _servers: servers,
    })
}

/// Runs `devnet ledger`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let root = match &args.lcp_attestation_root {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let files = init_with(&args.data, args.validating_notary, root.as_deref())?;
    if args.init_only {
        println!("network directory: {}", args.data.display());
        for f in &files {
            println!("  kakehashi ledger node --config {}", f.display());
        }
        return Ok(());
    }
    let mut nodes = vec![];
    for f in &files {
        nodes.push(start_node(f, None).await?);
    }
    let (directory, _) = NetworkDirectory::read(&args.data)?;
    println!(
        "kakehashi ledger devnet; network directory: {}",
        args.data.display()
    );
    for (name, ep) in &directory.nodes {
        println!("  {name}: rpc {} p2p {}", ep.rpc, ep.p2p);
    }
    println!(
        "try: kakehashi ledger --network {} --node PartyA accounts create alice",
        args.data.display()
    );
    crate::signal::shutdown_signal().await;
    for n in &nodes {
        n.node.shutdown();
    }
    Ok(())
}
