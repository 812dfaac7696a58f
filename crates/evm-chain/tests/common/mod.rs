//! Helpers shared by the devnet integration tests: starting a devnet, signing transactions, a
//! JSON-RPC client, and an independent Merkle-Patricia proof verifier (written against the
//! Ethereum yellow paper, sharing no code with the devnet's trie).
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use serde_json::Value;

pub const CHAIN_ID: u64 = 1337;

pub async fn start(
    production: BlockProduction,
    data_dir: Option<std::path::PathBuf>,
) -> (Devnet, HttpClient) {
    let devnet = Devnet::start(DevnetConfig {
        production,
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        chain_id: CHAIN_ID,
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let client = client(&devnet);
    (devnet, client)
}

/// Starts a devnet with `config` on an ephemeral port (chain id [`CHAIN_ID`]).
pub async fn start_config(config: DevnetConfig) -> (Devnet, HttpClient) {
    let devnet = Devnet::start(DevnetConfig {
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        chain_id: CHAIN_ID,
        ..config
    })
    .await
    .unwrap();
    let client = client(&devnet);
    (devnet, client)
}

/// Wall clock in Unix seconds.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn client(devnet: &Devnet) -> HttpClient {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .build(format!("http://{}", devnet.rpc_addr()))
        .unwrap()
}

pub async fn call(client: &HttpClient, method: &str, params: Vec<Value>) -> Value {
    client
        .request::<Value, _>(method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

pub async fn call_err(
    client: &HttpClient,
    method: &str,
    params: Vec<Value>,
) -> jsonrpsee::types::ErrorObjectOwned {
    match client.request::<Value, _>(method, params).await {
        Err(jsonrpsee::core::ClientError::Call(e)) => e,
        other => panic!("{method}: expected a JSON-RPC error, got {other:?}"),
    }
}

pub fn dev_signer(i: usize) -> PrivateKeySigner {
    let accounts = kh_evm_chain::dev_accounts(kh_evm_chain::TEST_MNEMONIC, i + 1).unwrap();
    PrivateKeySigner::from_bytes(&accounts[i].private_key).unwrap()
}

pub fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

pub fn hex_u256(v: &Value) -> U256 {
    v.as_str().unwrap().parse().unwrap()
}

pub fn hex_bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

pub enum Kind {
    Legacy,
    Eip2930,
    Eip1559,
}

pub fn sign(
    signer: &PrivateKeySigner,
    kind: Kind,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas: u64,
) -> Bytes {
    let envelope: TxEnvelope = match kind {
        Kind::Legacy => {
            let tx = TxLegacy {
                chain_id: Some(CHAIN_ID),
                nonce,
                gas_price: 3_000_000_000,
                gas_limit: gas,
                to,
                value,
                input,
            };
            let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
            tx.into_signed(sig).into()
        }
        Kind::Eip2930 => {
            let tx = TxEip2930 {
                chain_id: CHAIN_ID,
                nonce,
                gas_price: 3_000_000_000,
                gas_limit: gas,
                to,
                value,
                input,
                access_list: Default::default(),
            };
            let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
            tx.into_signed(sig).into()
        }
        Kind::Eip1559 => {
            let tx = TxEip1559 {
                chain_id: CHAIN_ID,
                nonce,
                gas_limit: gas,
                max_fee_per_gas: 3_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                to,
                value,
                access_list: Default::default(),
                input,
            };
            let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
            tx.into_signed(sig).into()
        }
    };
    Bytes::from(envelope.encoded_2718())
}

/// Init code that deploys `runtime`.
pub fn deploy_code(runtime: &[u8]) -> Bytes {
    let len = u8::try_from(runtime.len()).unwrap();
    let mut code = vec![
        0x60, len, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, len, 0x60, 0x00, 0xf3,
    ];
    code.extend_from_slice(runtime);
    Bytes::from(code)
}

pub const LOG_TOPIC: [u8; 32] = [0xaa; 32];

/// Runtime: stores calldata word 0 at slot 0 and emits LOG1(LOG_TOPIC) with that word.
pub fn store_and_log_runtime() -> Vec<u8> {
    let mut code = vec![
        0x60, 0x00, 0x35, 0x80, 0x60, 0x00, 0x55, 0x60, 0x00, 0x52, 0x7f,
    ];
    code.extend_from_slice(&LOG_TOPIC);
    code.extend_from_slice(&[0x60, 0x20, 0x60, 0x00, 0xa1, 0x00]);
    code
}

/// Runtime: always reverts with data 0xdeadbeef.
pub fn revert_runtime() -> Vec<u8> {
    vec![
        0x63, 0xde, 0xad, 0xbe, 0xef, 0x60, 0x00, 0x52, 0x60, 0x04, 0x60, 0x1c, 0xfd,
    ]
}

pub const GWEI: u128 = 1_000_000_000;

/// An EIP-1559 transfer of `value` to 0x77..77 with the given fee cap and tip.
pub fn sign_fees(
    signer: &PrivateKeySigner,
    nonce: u64,
    max_fee: u128,
    tip: u128,
    value: U256,
) -> Bytes {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0x77)),
        value,
        access_list: Default::default(),
        input: Default::default(),
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    envelope.encoded_2718().into()
}

/// POSTs `body` over a raw HTTP/1.1 connection; returns the status and the body.
pub async fn raw_http(addr: std::net::SocketAddr, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

// ---- independent Merkle-Patricia proof verification ----

/// One RLP item: (is_list, payload, total length).
fn rlp_item(b: &[u8]) -> Result<(bool, &[u8], usize), String> {
    let first = *b.first().ok_or("empty rlp")?;
    let (list, hlen, plen) = match first {
        0x00..=0x7f => return Ok((false, &b[..1], 1)),
        0x80..=0xb7 => (false, 1, usize::from(first - 0x80)),
        0xb8..=0xbf => {
            let n = usize::from(first - 0xb7);
            (false, 1 + n, be(&b[1..1 + n]))
        }
        0xc0..=0xf7 => (true, 1, usize::from(first - 0xc0)),
        _ => {
            let n = usize::from(first - 0xf7);
            (true, 1 + n, be(&b[1..1 + n]))
        }
    };
    let end = hlen + plen;
    if b.len() < end {
        return Err("truncated rlp".into());
    }
    Ok((list, &b[hlen..end], end))
}

fn be(b: &[u8]) -> usize {
    b.iter().fold(0, |a, x| (a << 8) | usize::from(*x))
}

/// The raw encodings of a list's items.
fn rlp_list(b: &[u8]) -> Result<Vec<&[u8]>, String> {
    let (list, mut payload, _) = rlp_item(b)?;
    if !list {
        return Err("expected list".into());
    }
    let mut out = vec![];
    while !payload.is_empty() {
        let (_, _, len) = rlp_item(payload)?;
        out.push(&payload[..len]);
        payload = &payload[len..];
    }
    Ok(out)
}

fn nibbles(key: &[u8]) -> Vec<u8> {
    key.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect()
}

/// Verifies `proof` for `key` (already hashed) against `root`: `Ok(Some(value))` proves
/// membership, `Ok(None)` proves absence, `Err` means the proof is invalid.
pub fn verify_mpt(root: B256, key: B256, proof: &[Vec<u8>]) -> Result<Option<Vec<u8>>, String> {
    let path = nibbles(key.as_slice());
    let mut pos = 0usize;
    let mut expected: Vec<u8> = root.to_vec(); // a hash, or an embedded node
    let mut nodes = proof.iter();
    loop {
        let node: Vec<u8> = if expected.len() == 32 {
            let Some(n) = nodes.next() else {
                // geth proves absence from an empty trie with no nodes at all.
                if root == alloy_trie::EMPTY_ROOT_HASH && pos == 0 {
                    return Ok(None);
                }
                return Err("proof ended early".into());
            };
            if keccak256(n).as_slice() != expected.as_slice() {
                if root == alloy_trie::EMPTY_ROOT_HASH && n.as_slice() == [0x80] {
                    return Ok(None);
                }
                return Err("node hash mismatch".into());
            }
            n.clone()
        } else {
            expected.clone()
        };
        let items = rlp_list(&node)?;
        let child = match items.len() {
            17 => {
                if pos == path.len() {
                    let (_, v, _) = rlp_item(items[16])?;
                    return Ok((!v.is_empty()).then(|| v.to_vec()));
                }
                let c = items[usize::from(path[pos])];
                pos += 1;
                c
            }
            2 => {
                let (_, enc, _) = rlp_item(items[0])?;
                let hp = nibbles(enc);
                let flag = *hp.first().ok_or("empty path")?;
                let leaf = flag >= 2;
                let seg = if flag % 2 == 1 { &hp[1..] } else { &hp[2..] };
                if leaf {
                    if path[pos..] == *seg {
                        let (_, v, _) = rlp_item(items[1])?;
                        return Ok(Some(v.to_vec()));
                    }
                    return Ok(None);
                }
                if !path[pos..].starts_with(seg) {
                    return Ok(None);
                }
                pos += seg.len();
                items[1]
            }
            n => return Err(format!("node with {n} items")),
        };
        let (is_list, payload, _) = rlp_item(child)?;
        if is_list {
            expected = child.to_vec(); // embedded node
        } else if payload.is_empty() {
            return Ok(None);
        } else if payload.len() == 32 {
            expected = payload.to_vec();
        } else {
            return Err("bad child reference".into());
        }
    }
}

/// Decodes an account leaf: (nonce, balance, storage root, code hash).
pub fn decode_account(rlp: &[u8]) -> (u64, U256, B256, B256) {
    let items = rlp_list(rlp).unwrap();
    let field = |i: usize| rlp_item(items[i]).unwrap().1.to_vec();
    (
        be(&field(0)) as u64,
        U256::from_be_slice(&field(1)),
        B256::from_slice(&field(2)),
        B256::from_slice(&field(3)),
    )
}

/// Decodes a storage leaf value.
pub fn decode_storage(rlp: &[u8]) -> U256 {
    U256::from_be_slice(rlp_item(rlp).unwrap().1)
}

pub fn address_key(a: Address) -> B256 {
    keccak256(a)
}
