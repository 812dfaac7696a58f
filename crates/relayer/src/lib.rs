//! The relayer: the only kakehashi component that originates cross-chain traffic.
//!
//! Owns: the relayer's configuration file ([`RelayerConfig`], TOML, unknown keys refused); the
//! EVM chain adapter ([`evm`]: JSON-RPC over several endpoints with failover, the signer from an
//! Ethereum v3 keystore, nonce management, gas estimation and confirmation depth); the lease that
//! lets exactly one of several relayer processes submit on a path ([`lease`]: a lock file for
//! one host, a row in PostgreSQL for several); and what operators watch ([`metrics`]: Prometheus
//! `/metrics` and a `/health` endpoint, bound to loopback by default).
//!
//! Does not own: the chains (`kh-evm-chain`, the ledger), the IBC handlers (`contracts/`,
//! `kh-ibc-ledger`), the light clients and their proxy (`kh-elc`, `kh-lcp`).
//!
//! ## Feature Flags
//! None.

pub mod chain;
pub mod config;
pub mod evm;
pub mod handshake;
pub mod lcp;
pub mod lease;
pub mod ledger;
pub mod ledger_ibc;
pub mod metrics;
pub mod path;
pub mod relay;

pub use config::{ConfigError, RelayerConfig};
