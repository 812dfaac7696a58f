//! `kakehashi lcp enclave ...` and `kakehashi lcp service ...`: the LCP node (kh-lcp-service).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy_primitives::Address;
use anyhow::Context;
use clap::{Args, Subcommand};
use kh_lcp_service::config::{DEFAULT_KEY_LIFETIME, ServiceConfig};
use kh_lcp_service::host::{list_keys, unix_now};
use kh_lcp_service::{EnclaveHandle, LcpNode};
use serde::Serialize;

use crate::output::print_json;

/// `lcp enclave ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum EnclaveCommand {
    /// Run the enclave on stdin/stdout (framed calls from the host): what the service starts
    /// as its child process. MRENCLAVE is the SHA-256 of this executable.
    Run(RunArgs),
    /// Generate a key inside the enclave, seal it and have it attested (simulation).
    GenerateKey(GenerateKeyArgs),
    /// List the keys in a node directory.
    ListKeys(HomeArgs),
    /// The enclave's measurement and the node's attestation root and keys.
    Info(HomeArgs),
}

/// `lcp service ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Start the gRPC service (mutual TLS) with its enclave process.
    Start(StartArgs),
    /// Write a configuration, a node directory and a test PKI (root, server and relayer
    /// certificates) into a directory.
    Init(InitArgs),
}

/// Arguments of `lcp enclave run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The simulated platform secret (created if missing).
    #[arg(long)]
    platform_secret: PathBuf,
}

/// A node directory.
#[derive(Debug, Args)]
pub(crate) struct HomeArgs {
    /// The node directory.
    #[arg(long)]
    home: PathBuf,
}

/// Arguments of `lcp enclave generate-key`.
#[derive(Debug, Args)]
pub(crate) struct GenerateKeyArgs {
    /// The node directory.
    #[arg(long)]
    home: PathBuf,
    /// The operator the key's report binds.
    #[arg(long)]
    operator: Option<Address>,
    /// Key lifetime, seconds.
    #[arg(long, default_value_t = DEFAULT_KEY_LIFETIME)]
    key_lifetime: u64,
}

/// Arguments of `lcp service start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The TOML configuration.
    #[arg(long)]
    config: PathBuf,
}

/// Arguments of `lcp service init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The directory to write `lcp.toml`, `lcp-home/` and `tls/` into.
    #[arg(long)]
    dir: PathBuf,
}

fn own_enclave(home: &Path) -> anyhow::Result<EnclaveHandle> {
    let exe = std::env::current_exe().context("locating this executable")?;
    Ok(EnclaveHandle::spawn(&[
        exe.display().to_string(),
        "lcp".into(),
        "enclave".into(),
        "run".into(),
        "--platform-secret".into(),
        home.join("platform-secret").display().to_string(),
    ])?)
}

#[derive(Serialize)]
struct KeyOut {
    address: Address,
    operator: Option<Address>,
    attested_at: u64,
    expires_at: u64,
    active: bool,
    mrenclave: String,
}

fn key_out(k: &kh_lcp_service::KeyEntry, now: u64) -> KeyOut {
    KeyOut {
        address: k.address,
        operator: k.operator,
        attested_at: k.attested_at,
        expires_at: k.expires_at,
        active: now < k.expires_at,
        mrenclave: k.mrenclave.clone(),
    }
}

pub(crate) fn enclave(cmd: EnclaveCommand) -> anyhow::Result<()> {
    match cmd {
        EnclaveCommand::Run(a) => Ok(kh_lcp_service::run_enclave_process(&a.platform_secret)?),
        EnclaveCommand::GenerateKey(a) => {
            std::fs::create_dir_all(&a.home)?;
            let node = LcpNode::open(&a.home, own_enclave(&a.home)?, a.key_lifetime)?;
            let k = node.generate_key(a.operator)?;
            print_json(&key_out(&k, unix_now().as_secs()))
        }
        EnclaveCommand::ListKeys(a) => {
            let now = unix_now().as_secs();
            let keys: Vec<KeyOut> = list_keys(&a.home, None)?
                .iter()
                .map(|k| key_out(k, now))
                .collect();
            print_json(&keys)
        }
        EnclaveCommand::Info(a) => {
            std::fs::create_dir_all(&a.home)?;
            let node = LcpNode::open(&a.home, own_enclave(&a.home)?, DEFAULT_KEY_LIFETIME)?;
            #[derive(Serialize)]
            struct Info {
                mrenclave: String,
                attestation_root_der_hex: String,
                keys: Vec<KeyOut>,
            }
            let now = unix_now().as_secs();
            print_json(&Info {
                mrenclave: hex::encode(node.mrenclave()),
                attestation_root_der_hex: hex::encode(node.attestation_root_der()),
                keys: node.keys()?.iter().map(|k| key_out(k, now)).collect(),
            })
        }
    }
}

pub(crate) async fn service(cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Init(a) => init(&a.dir),
        ServiceCommand::Start(a) => start(&a.config).await,
    }
}

fn init(dir: &Path) -> anyhow::Result<()> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls)?;
    std::fs::create_dir_all(dir.join("lcp-home"))?;
    let ca = kh_ledger_node::NetworkCa::generate("lcp")?;
    let server = ca.issue("lcp")?;
    let relayer = ca.issue("relayer")?;
    std::fs::write(tls.join("root.pem"), ca.root_pem())?;
    kh_ledger_node::write_secret(&tls.join("root-key.pem"), &ca.key_pem())?;
    std::fs::write(tls.join("lcp.pem"), &server.cert_pem)?;
    kh_ledger_node::write_secret(&tls.join("lcp-key.pem"), &server.key_pem)?;
    std::fs::write(tls.join("relayer.pem"), &relayer.cert_pem)?;
    kh_ledger_node::write_secret(&tls.join("relayer-key.pem"), &relayer.key_pem)?;
    let config = dir.join("lcp.toml");
    std::fs::write(
        &config,
        "home = \"lcp-home\"\nlisten = \"127.0.0.1:7700\"\nkey_lifetime_secs = 604800\n\
         generate_key_if_missing = true\n\n[tls]\ncert = \"tls/lcp.pem\"\nkey = \"tls/lcp-key.pem\"\n\
         client_ca = \"tls/root.pem\"\n",
    )?;
    print_json(&serde_json::json!({ "config": config }))
}

async fn start(config: &Path) -> anyhow::Result<()> {
    let c = ServiceConfig::load(config)?;
    std::fs::create_dir_all(&c.home).with_context(|| format!("creating {}", c.home.display()))?;
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let (cert, key, ca) = (
        read(&c.tls.cert)?,
        read(&c.tls.key)?,
        read(&c.tls.client_ca)?,
    );
    let enclave = EnclaveHandle::spawn(&c.enclave_command()?)?;
    let node = LcpNode::open(&c.home, enclave, c.key_lifetime_secs)?;
    if c.generate_key_if_missing && node.signing_key(unix_now().as_secs()).is_err() {
        node.generate_key(None)?;
    }
    let handle = kh_lcp_service::service::serve(c.listen, &cert, &key, &ca, Arc::new(node)).await?;
    // One line on stdout once serving, for supervisors and tests.
    println!(
        "{}",
        serde_json::json!({ "listening": handle.addr.to_string() })
    );
    crate::signal::shutdown_signal().await;
    tracing::info!("shutting down the LCP service");
    handle.stop().await;
    Ok(())
}
