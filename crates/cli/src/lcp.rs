//! `kakehashi lcp ...`: Light Client Proxy tools (attestation reports; the enclave and the
//! service are in `lcp_node`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use anyhow::Context;
use clap::{Args, Subcommand};
use kh_lcp::attestation::MAX_REPORT_FILE_LEN;
use kh_lcp::{AttestationPolicy, RootCa, SignedReport, SimulationCa};
use serde::Serialize;

use crate::output::{UsageError, print_json};

/// File names of the simulation authority in its directory.
const SIM_ROOT: &str = "simulation_root.der";
const SIM_SIGNING_CERT: &str = "simulation_signing.der";
const SIM_SIGNING_KEY: &str = "simulation_signing.key";

/// Light Client Proxy tools.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Attestation reports (IAS format): verify one as the LCP clients do, or issue one with
    /// the simulation authority.
    #[command(subcommand)]
    Attestation(AttestationCommand),
    /// The enclave (simulation): run it (as the service does), generate and list keys, info.
    #[command(subcommand)]
    Enclave(crate::lcp_node::EnclaveCommand),
    /// The LCP gRPC service.
    #[command(subcommand)]
    Service(crate::lcp_node::ServiceCommand),
}

/// `lcp attestation ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AttestationCommand {
    /// Verify a report exactly as the LCP clients do before registering its enclave key;
    /// prints {valid, enclave_key, operator, mrenclave, quote_status, advisory_ids,
    /// attestation_time} and exits 1 with the reason when the report is not valid.
    Verify(VerifyArgs),
    /// Issue a simulation-mode report for an enclave key, creating the simulation root and
    /// signing certificate in --ca-dir on first use.
    Simulate(SimulateArgs),
}

/// Arguments of `lcp attestation verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The report: JSON {avr, signature, signing_cert} (base64 binary fields).
    #[arg(long)]
    avr: PathBuf,
    /// The attestation root certificate (DER) the signing certificate must chain to.
    #[arg(long)]
    root_cert: PathBuf,
    /// Pin the enclave measurement (32 bytes hex).
    #[arg(long)]
    mrenclave: Option<String>,
    /// Quote statuses accepted besides OK.
    #[arg(long, value_delimiter = ',')]
    allowed_quote_statuses: Vec<String>,
    /// Advisory ids accepted in a report whose status is not OK.
    #[arg(long, value_delimiter = ',')]
    allowed_advisory_ids: Vec<String>,
    /// Accept debug enclaves (development mode).
    #[arg(long)]
    debug: bool,
    /// Key lifetime in seconds from the attestation time (as the client's key_expiration);
    /// the report is refused once it has passed at --at.
    #[arg(long)]
    key_expiration: Option<u64>,
    /// The Unix time certificates and expiry are judged at (default: now).
    #[arg(long)]
    at: Option<u64>,
}

/// Arguments of `lcp attestation simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Directory of the simulation authority (simulation_root.der, simulation_signing.der,
    /// simulation_signing.key); created with a new authority if it holds none.
    #[arg(long)]
    ca_dir: PathBuf,
    /// The enclave key's Ethereum address.
    #[arg(long)]
    enclave_key: Address,
    /// The operator the key is bound to.
    #[arg(long)]
    operator: Option<Address>,
    /// The enclave measurement (32 bytes hex).
    #[arg(long)]
    mrenclave: String,
    /// Mark the enclave as a debug enclave.
    #[arg(long)]
    debug: bool,
    /// The attestation time (Unix seconds; default: now).
    #[arg(long)]
    at: Option<u64>,
    /// Validity of a newly created authority, in days from now.
    #[arg(long, default_value_t = 3650)]
    validity_days: u64,
    /// Where to write the report (JSON {avr, signature, signing_cert}).
    #[arg(long)]
    out: PathBuf,
}

/// What `lcp attestation verify` prints.
#[derive(Debug, Serialize)]
struct Verdict {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enclave_key: Option<Address>,
    /// The operator bound by the report; null when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<Option<Address>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mrenclave: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quote_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advisory_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    /// The time the report was judged at.
    at: u64,
}

/// What `lcp attestation simulate` prints.
#[derive(Debug, Serialize)]
struct Simulated {
    report: PathBuf,
    root_cert: PathBuf,
    created_authority: bool,
    enclave_key: Address,
    operator: Option<Address>,
    mrenclave: String,
    attestation_time: u64,
    debug: bool,
}

pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Attestation(AttestationCommand::Verify(args)) => verify(args),
        Command::Attestation(AttestationCommand::Simulate(args)) => simulate(args),
        Command::Enclave(cmd) => crate::lcp_node::enclave(cmd),
        Command::Service(cmd) => crate::lcp_node::service(cmd).await,
    }
}

fn now() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs())
}

fn parse_mrenclave(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim_start_matches("0x"))
        .map_err(|e| UsageError(format!("--mrenclave: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        UsageError(format!("--mrenclave: {} bytes, expected 32", b.len())).into()
    })
}

/// Reads at most `max` bytes of a file (refusing larger ones) as a usage error on failure.
fn read_bounded(path: &Path, max: usize, what: &str) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| UsageError(format!("{what} {}: {e}", path.display())))?
        .len();
    if len > max as u64 {
        return Err(UsageError(format!(
            "{what} {}: {len} bytes, more than the {max}-byte limit",
            path.display()
        ))
        .into());
    }
    std::fs::read(path).map_err(|e| UsageError(format!("{what} {}: {e}", path.display())).into())
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let at = match args.at {
        Some(t) => t,
        None => now()?,
    };
    let root_der = read_bounded(
        &args.root_cert,
        kh_lcp::attestation::MAX_CERT_LEN,
        "--root-cert",
    )?;
    let root = RootCa::from_der(&root_der)
        .map_err(|e| UsageError(format!("--root-cert {}: {e}", args.root_cert.display())))?;
    let policy = AttestationPolicy {
        mrenclave: args.mrenclave.as_deref().map(parse_mrenclave).transpose()?,
        allowed_quote_statuses: args
            .allowed_quote_statuses
            .into_iter()
            .collect::<BTreeSet<_>>(),
        allowed_advisory_ids: args
            .allowed_advisory_ids
            .into_iter()
            .collect::<BTreeSet<_>>(),
        allow_debug: args.debug,
        key_expiration: args.key_expiration,
    };
    let file = read_bounded(&args.avr, MAX_REPORT_FILE_LEN, "--avr")?;
    let result = SignedReport::from_json(&file).and_then(|r| r.verify(&root, &policy, at));
    match result {
        Ok(v) => print_json(&Verdict {
            valid: true,
            reason: None,
            enclave_key: Some(v.report_data.enclave_key),
            operator: Some(v.report_data.operator),
            mrenclave: Some(format!("0x{}", hex::encode(v.quote.mrenclave()))),
            quote_status: Some(v.quote_status),
            advisory_ids: Some(v.advisory_ids),
            attestation_time: Some(v.attestation_time),
            debug: Some(v.quote.is_debug()),
            expires_at: policy
                .key_expiration
                .map(|l| v.attestation_time.saturating_add(l)),
            at,
        }),
        Err(e) => {
            print_json(&Verdict {
                valid: false,
                reason: Some(e.to_string()),
                enclave_key: None,
                operator: None,
                mrenclave: None,
                quote_status: None,
                advisory_ids: None,
                attestation_time: None,
                debug: None,
                expires_at: None,
                at,
            })?;
            Err(anyhow::Error::new(e)
                .context(format!("report {} is not valid", args.avr.display())))
        }
    }
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Loads the authority in `dir`, or creates one there if the directory holds none.
fn load_or_create(dir: &Path, validity_days: u64) -> anyhow::Result<(SimulationCa, bool)> {
    let (root, cert, key) = (
        dir.join(SIM_ROOT),
        dir.join(SIM_SIGNING_CERT),
        dir.join(SIM_SIGNING_KEY),
    );
    let present = [&root, &cert, &key].map(|p| p.exists());
    if present.iter().all(|p| *p) {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let ca = SimulationCa::from_parts(&read(&root)?, &read(&cert)?, &read(&key)?)
            .with_context(|| format!("simulation authority in {}", dir.display()))?;
        return Ok((ca, false));
    }
    if present.iter().any(|p| *p) {
        return Err(UsageError(format!(
            "{} holds part of a simulation authority ({SIM_ROOT}, {SIM_SIGNING_CERT}, {SIM_SIGNING_KEY}); refusing to overwrite it",
            dir.display()
        ))
        .into());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let now = now()?;
    // Valid from a day ago (clock skew between hosts) for the requested number of days.
    let not_after = now.saturating_add(validity_days.saturating_mul(86_400));
    let ca = SimulationCa::generate(now.saturating_sub(86_400), not_after)?;
    write_secret(&key, &ca.signing_key_pkcs8_der()?)?;
    std::fs::write(&cert, ca.signing_cert_der())
        .with_context(|| format!("writing {}", cert.display()))?;
    std::fs::write(&root, ca.root_der()).with_context(|| format!("writing {}", root.display()))?;
    tracing::info!(dir = %dir.display(), not_after, "created a simulation attestation authority");
    Ok((ca, true))
}

fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let mrenclave = parse_mrenclave(&args.mrenclave)?;
    let at = match args.at {
        Some(t) => t,
        None => now()?,
    };
    let (ca, created) = load_or_create(&args.ca_dir, args.validity_days)?;
    let report = ca.simulate(args.enclave_key, args.operator, mrenclave, at, args.debug)?;
    std::fs::write(&args.out, report.to_json())
        .with_context(|| format!("writing {}", args.out.display()))?;
    print_json(&Simulated {
        report: args.out,
        root_cert: args.ca_dir.join(SIM_ROOT),
        created_authority: created,
        enclave_key: args.enclave_key,
        operator: args.operator,
        mrenclave: format!("0x{}", hex::encode(mrenclave)),
        attestation_time: at,
        debug: args.debug,
    })
}
