//! Shared by the tests that relay through LCP: an LCP node in process (enclave in simulation
//! behind the same call boundary, one attested key, gRPC with mutual TLS on loopback) and an
//! EVM devnet with the LCP client contract registered as `lcp-client`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use alloy_primitives::Address;
use alloy_sol_types::SolConstructor;
use kh_contracts::{LCPAttestation, LCPClient};
use kh_lcp_service::enclave::Enclave;
use kh_lcp_service::seal::{PlatformSecret, Sealer};
use kh_lcp_service::service::{self, Client as LcpGrpc};
use kh_lcp_service::{EnclaveHandle, LcpNode};
use kh_ledger_node::NetworkCa;

use super::evm_ibc::{Chain, chain};

/// A devnet chain with the LCP client registered under "lcp-client", trusting `root_der`.
pub(crate) async fn lcp_chain(chain_id: u64, root_der: &[u8]) -> Chain {
    lcp_chain_and_client(chain_id, root_der).await.0
}

/// [`lcp_chain`], with the LCP client contract's address.
pub(crate) async fn lcp_chain_and_client(chain_id: u64, root_der: &[u8]) -> (Chain, Address) {
    let c = chain(chain_id).await;
    let attestation = c.deploy(LCPAttestation::BYTECODE.to_vec()).await;
    let mut init = LCPClient::BYTECODE.to_vec();
    init.extend(
        LCPClient::constructorCall {
            handler_: c.handler,
            attestation_: attestation,
            rootCert: root_der.to_vec().into(),
            developmentMode_: false,
        }
        .abi_encode(),
    );
    let client = c.deploy(init).await;
    c.register_client("lcp-client", client).await;
    (c, client)
}

/// An LCP node of enclave build `mrenclave` in `home`, with one attested key, served over
/// gRPC with mutual TLS; a connector for its clients.
pub(crate) struct Lcp {
    pub(crate) service: service::ServiceHandle,
    ca: NetworkCa,
    client_cert: (String, String),
}

impl Lcp {
    /// Starts the node; it and its attestation root (DER).
    pub(crate) async fn start(home: &Path, mrenclave: [u8; 32]) -> (Self, Vec<u8>) {
        let platform = PlatformSecret::load_or_create(&home.join("platform-secret")).unwrap();
        let enclave =
            EnclaveHandle::in_process(Enclave::new(Sealer::new(&platform, mrenclave))).unwrap();
        let node = LcpNode::open(home, enclave, 3600).unwrap();
        node.generate_key(None).unwrap();
        let root = node.attestation_root_der();
        let ca = NetworkCa::generate("lcp-test").unwrap();
        let (server, relayer) = (ca.issue("lcp").unwrap(), ca.issue("relayer").unwrap());
        let service = service::serve(
            "127.0.0.1:0".parse().unwrap(),
            &server.cert_pem,
            &server.key_pem,
            &ca.root_pem(),
            Arc::new(node),
        )
        .await
        .unwrap();
        (
            Lcp {
                service,
                ca,
                client_cert: (relayer.cert_pem, relayer.key_pem),
            },
            root,
        )
    }

    /// Stops the service.
    pub(crate) async fn stop(self) {
        self.service.stop().await;
    }

    /// A client of the node (the relayer's certificate).
    pub(crate) async fn connect(&self) -> LcpGrpc {
        service::connect(
            self.service.addr,
            &self.client_cert.0,
            &self.client_cert.1,
            &self.ca.root_pem(),
        )
        .await
        .unwrap()
    }
}
