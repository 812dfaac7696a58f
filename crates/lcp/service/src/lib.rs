//! An LCP node (DESIGN §1, §4): the enclave runtime in simulation, run as its own process, and
//! the host around it.
//!
//! Owns:
//! - [`seal`]: sealing keys to the enclave build (MRENCLAVE = SHA-256 of the enclave
//!   executable) and a simulated platform secret;
//! - [`protocol`]: the narrow call boundary to the enclave process (framed bcs over
//!   stdin/stdout);
//! - [`enclave`]: what runs inside — key generation, unsealing to sign, the ELCs, message
//!   aggregation;
//! - [`elc`]: the adapter from the ELCs of `kh-elc` to proxy messages and state ids;
//! - [`host`]: the enclave process handle, the host's stores (sealed keys with their simulated
//!   IAS reports, clients) and [`host::LcpNode`];
//! - [`service`]: the gRPC service with mutual TLS, and its configuration ([`config`]).
//!
//! Not here: proxy message formats, attestation verification and the LCP client state machine
//! (`kh-lcp`, which the chains' hosts use without depending on the ELCs).

pub mod config;
pub mod elc;
pub mod enclave;
pub mod host;
pub mod protocol;
pub mod seal;
pub mod service;

/// Generated protobuf types and gRPC stubs of `kakehashi.lcp.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]
pub mod proto {
    tonic::include_proto!("kakehashi.lcp.v1");
}

pub use host::{EnclaveHandle, HostError, KeyEntry, LcpNode};

/// Runs the enclave in this process on stdin/stdout until the host closes stdin: the body of
/// `kakehashi lcp enclave run`. The measurement is that of the running executable.
pub fn run_enclave_process(platform_secret: &std::path::Path) -> Result<(), HostError> {
    let exe = std::env::current_exe().map_err(|e| HostError::Enclave(e.to_string()))?;
    let mrenclave = seal::measure(&exe).map_err(|e| HostError::Enclave(e.to_string()))?;
    let platform = seal::PlatformSecret::load_or_create(platform_secret)
        .map_err(|e| HostError::Enclave(e.to_string()))?;
    let enclave = enclave::Enclave::new(seal::Sealer::new(&platform, mrenclave));
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    enclave
        .serve(std::io::BufReader::new(stdin), stdout)
        .map_err(|e| HostError::Enclave(e.to_string()))
}
