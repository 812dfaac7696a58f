//! The Light Client Proxy (LCP) formats (DESIGN §5).
//!
//! Owns:
//! - [`attestation`]: enclave key registration evidence in the Intel IAS report format — parse
//!   the `{avr, signature, signing_cert}` form, verify the RSA-SHA256 signature, the signing
//!   certificate's chain to a configured root and its validity at a given time, the quote
//!   status and advisory allow lists, the MRENCLAVE pin, the debug flag, and read report data
//!   v1 (enclave key address and operator address);
//! - [`simulation`]: the simulation attestation authority (an RSA root and signing certificate
//!   created at setup) that issues reports in the same format for an enclave running in
//!   simulation mode;
//! - [`message`]: proxy messages (UpdateState, VerifyMembership, Misbehaviour), validation
//!   contexts, state ids, commitment proofs, and the enclave key's secp256k1 signatures over
//!   them;
//! - [`client`]: the LCP client state machine a chain runs (key registration with MRENCLAVE
//!   pin, allow lists, expiry and operator approvals; UpdateState with operator thresholds;
//!   membership proofs; misbehaviour), serialisable for a host to store;
//! - [`operator`]: the EIP-712 digest an operator signs to approve an enclave key's
//!   registration, and the recovery of that operator.
//!
//! Not here: the enclave runtime, key sealing and the gRPC service (`kh-lcp-service` in
//! `crates/lcp/service`, which depends on the ELCs; this crate must not, since the ledger's IBC
//! host embeds the client and the Ledger ELC depends on that host). Not yet: DCAP quote
//! verification.

pub mod attestation;
pub mod client;
pub mod message;
pub mod operator;
pub mod simulation;
mod time;

pub use attestation::{
    AttestationError, AttestationPolicy, QuoteBody, ReportData, RootCa, SignedReport,
    VerifiedReport,
};
pub use message::{
    CommitmentProofs, EmittedState, EnclaveKey, Height, MessageError, MisbehaviourMessage,
    PrevState, ProxyMessage, StateId, TrustingPeriodContext, UpdateStateMessage, ValidationContext,
    VerifyMembershipMessage, recover_signer,
};
pub use simulation::{SimulationCa, SimulationError};
