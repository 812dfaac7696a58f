//! The host side of an LCP node: the enclave process handle, the stores the host keeps (sealed
//! keys with their attestation reports, clients), and [`LcpNode`], which the gRPC service and
//! the CLI drive.
//!
//! Layout of a node directory:
//! `platform-secret` (the simulated platform's seal secret, created at setup, read only by the
//! enclave process), `simulation-ca/{root.der,signing.der,signing-key.der}` (the simulation
//! attestation authority), `keys/<address>.json` (sealed key, report, expiry),
//! `clients/<client id>.json` (client type and bcs client instance, hex).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use kh_lcp::{SignedReport, SimulationCa};
use serde::{Deserialize, Serialize};

use crate::elc::StoredClient;
use crate::enclave::Enclave;
use crate::protocol::{Request, Response, SignedMessage, read_frame, write_frame};

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The enclave process cannot be started or talked to.
    #[error("enclave process: {0}")]
    Enclave(String),
    /// The enclave refused the call.
    #[error("enclave refused: {0}")]
    Refused(String),
    /// The enclave answered with the wrong kind of response.
    #[error("unexpected enclave response")]
    UnexpectedResponse,
    /// A file cannot be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No client with that id.
    #[error("no client {0:?}")]
    UnknownClient(String),
    /// No key with that address.
    #[error("no enclave key {0}")]
    UnknownKey(Address),
    /// No unexpired key.
    #[error("no unexpired enclave key: generate one")]
    NoActiveKey,
    /// A client id is not acceptable.
    #[error("client id {0:?} is not [a-z0-9-]{{1,64}}")]
    BadClientId(String),
    /// The simulation authority failed.
    #[error("simulation attestation: {0}")]
    Simulation(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |e| HostError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

struct Conn {
    child: Option<Child>,
    to: Box<dyn Write + Send>,
    from: Box<dyn Read + Send>,
}

/// A connection to an enclave: a child process (the production shape) or a thread in this
/// process speaking the same framed protocol over pipes (tests and benches).
pub struct EnclaveHandle {
    conn: Mutex<Conn>,
}

impl std::fmt::Debug for EnclaveHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnclaveHandle")
    }
}

impl EnclaveHandle {
    /// Starts the enclave process `command[0]` with the rest as arguments.
    pub fn spawn(command: &[String]) -> Result<Self, HostError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| HostError::Enclave("empty enclave command".to_owned()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| HostError::Enclave(format!("starting {program}: {e}")))?;
        let to = child
            .stdin
            .take()
            .ok_or_else(|| HostError::Enclave("no stdin".to_owned()))?;
        let from = child
            .stdout
            .take()
            .ok_or_else(|| HostError::Enclave("no stdout".to_owned()))?;
        tracing::info!(pid = child.id(), program, "enclave process started");
        Ok(EnclaveHandle {
            conn: Mutex::new(Conn {
                child: Some(child),
                to: Box::new(to),
                from: Box::new(std::io::BufReader::new(from)),
            }),
        })
    }

    /// Runs `enclave` on a thread of this process behind pipes.
    pub fn in_process(enclave: Enclave) -> Result<Self, HostError> {
        let (req_r, req_w) = std::io::pipe().map_err(|e| HostError::Enclave(e.to_string()))?;
        let (resp_r, resp_w) = std::io::pipe().map_err(|e| HostError::Enclave(e.to_string()))?;
        std::thread::spawn(move || {
            if let Err(e) = enclave.serve(req_r, resp_w) {
                tracing::warn!(error = %e, "in-process enclave stopped");
            }
        });
        Ok(EnclaveHandle {
            conn: Mutex::new(Conn {
                child: None,
                to: Box::new(req_w),
                from: Box::new(resp_r),
            }),
        })
    }

    /// One call.
    pub fn call(&self, req: &Request) -> Result<Response, HostError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| HostError::Enclave("connection lock poisoned".to_owned()))?;
        write_frame(&mut conn.to, req).map_err(|e| HostError::Enclave(e.to_string()))?;
        let resp: Response = read_frame(&mut conn.from)
            .map_err(|e| HostError::Enclave(e.to_string()))?
            .ok_or_else(|| HostError::Enclave("the enclave closed the connection".to_owned()))?;
        if let Response::Error(e) = resp {
            return Err(HostError::Refused(e));
        }
        Ok(resp)
    }
}

impl Drop for EnclaveHandle {
    fn drop(&mut self) {
        if let Ok(conn) = self.conn.get_mut()
            && let Some(child) = conn.child.as_mut()
        {
            // Closing stdin ends the enclave's loop; reap it.
            conn.to = Box::new(std::io::sink());
            let _ = child.wait();
        }
    }
}

/// A key the host keeps: sealed, with its attestation report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The key's address.
    pub address: Address,
    /// The sealed secret (hex).
    pub sealed: String,
    /// The attestation report, `{avr, signature, signing_cert}` JSON.
    pub report: String,
    /// The operator the report binds, if any.
    pub operator: Option<Address>,
    /// Attestation time, Unix seconds.
    pub attested_at: u64,
    /// Generation time, Unix nanoseconds (orders keys attested in the same second).
    pub generated_ns: u64,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// The measurement the key was generated (and sealed) by.
    pub mrenclave: String,
}

/// The current Unix time.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Loads the simulation attestation authority of a node directory, creating it at setup.
pub fn load_or_create_simulation_ca(dir: &Path) -> Result<SimulationCa, HostError> {
    let ca_dir = dir.join("simulation-ca");
    let (root, signing, key) = (
        ca_dir.join("root.der"),
        ca_dir.join("signing.der"),
        ca_dir.join("signing-key.der"),
    );
    if root.exists() {
        let read = |p: &Path| std::fs::read(p).map_err(io_err(p));
        return SimulationCa::from_parts(&read(&root)?, &read(&signing)?, &read(&key)?)
            .map_err(|e| HostError::Simulation(e.to_string()));
    }
    std::fs::create_dir_all(&ca_dir).map_err(io_err(&ca_dir))?;
    let now = unix_now().as_secs();
    let ca = SimulationCa::generate(now.saturating_sub(86_400), now + 20 * 365 * 86_400)
        .map_err(|e| HostError::Simulation(e.to_string()))?;
    std::fs::write(&root, ca.root_der()).map_err(io_err(&root))?;
    std::fs::write(&signing, ca.signing_cert_der()).map_err(io_err(&signing))?;
    let pk8 = ca
        .signing_key_pkcs8_der()
        .map_err(|e| HostError::Simulation(e.to_string()))?;
    crate::seal::write_private(&key, &pk8).map_err(io_err(&key))?;
    Ok(ca)
}

/// An LCP node: the enclave, the stores, and the attestation authority.
#[derive(Debug)]
pub struct LcpNode {
    enclave: EnclaveHandle,
    dir: PathBuf,
    ca: SimulationCa,
    mrenclave: [u8; 32],
    key_lifetime: u64,
    write: Mutex<()>,
}

fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Serialize, Deserialize)]
struct ClientFile {
    client_type: String,
    instance: String,
}

impl LcpNode {
    /// Opens a node directory (creating its stores) with a running enclave.
    pub fn open(dir: &Path, enclave: EnclaveHandle, key_lifetime: u64) -> Result<Self, HostError> {
        for sub in ["keys", "clients"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let ca = load_or_create_simulation_ca(dir)?;
        let mrenclave = match enclave.call(&Request::Info)? {
            Response::Info { mrenclave } => mrenclave,
            _ => return Err(HostError::UnexpectedResponse),
        };
        tracing::info!(mrenclave = %hex::encode(mrenclave), dir = %dir.display(), "LCP node open");
        Ok(LcpNode {
            enclave,
            dir: dir.to_path_buf(),
            ca,
            mrenclave,
            key_lifetime,
            write: Mutex::new(()),
        })
    }

    /// The running enclave's measurement.
    pub fn mrenclave(&self) -> [u8; 32] {
        self.mrenclave
    }

    /// The key lifetime (seconds) reports are issued for.
    pub fn key_lifetime(&self) -> u64 {
        self.key_lifetime
    }

    /// The attestation root LCP clients must be configured with (DER).
    pub fn attestation_root_der(&self) -> Vec<u8> {
        self.ca.root_der().to_vec()
    }

    /// Generates a key in the enclave and has it attested (bound to `operator` if given).
    pub fn generate_key(&self, operator: Option<Address>) -> Result<KeyEntry, HostError> {
        let (address, sealed) = match self.enclave.call(&Request::GenerateKey)? {
            Response::Key { address, sealed } => (address, sealed),
            _ => return Err(HostError::UnexpectedResponse),
        };
        let now_d = unix_now();
        let now = now_d.as_secs();
        let report = self
            .ca
            .simulate(address, operator, self.mrenclave, now, false)
            .map_err(|e| HostError::Simulation(e.to_string()))?;
        let entry = KeyEntry {
            address,
            sealed: hex::encode(sealed),
            report: report.to_json(),
            operator,
            attested_at: now,
            generated_ns: u64::try_from(now_d.as_nanos()).unwrap_or(u64::MAX),
            expires_at: now.saturating_add(self.key_lifetime),
            mrenclave: hex::encode(self.mrenclave),
        };
        let path = self.key_path(address);
        let json = serde_json::to_vec_pretty(&entry).map_err(|e| HostError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        atomic_write(&path, &json)?;
        tracing::info!(%address, expires_at = entry.expires_at, "enclave key generated and attested");
        Ok(entry)
    }

    fn key_path(&self, address: Address) -> PathBuf {
        self.dir.join("keys").join(format!("{address:#x}.json"))
    }

    /// All keys of this build, newest attestation first.
    pub fn keys(&self) -> Result<Vec<KeyEntry>, HostError> {
        list_keys(&self.dir, Some(self.mrenclave))
    }

    /// One key.
    pub fn key(&self, address: Address) -> Result<KeyEntry, HostError> {
        let path = self.key_path(address);
        if !path.exists() {
            return Err(HostError::UnknownKey(address));
        }
        read_json(&path)
    }

    /// The key that signs now: the newest unexpired key of this build.
    pub fn signing_key(&self, now: u64) -> Result<KeyEntry, HostError> {
        self.keys()?
            .into_iter()
            .find(|k| now < k.expires_at)
            .ok_or(HostError::NoActiveKey)
    }

    fn sealed_now(&self) -> Result<Vec<u8>, HostError> {
        let k = self.signing_key(unix_now().as_secs())?;
        hex::decode(&k.sealed).map_err(|e| HostError::Io {
            path: self.key_path(k.address).display().to_string(),
            reason: e.to_string(),
        })
    }

    fn client_path(&self, id: &str) -> Result<PathBuf, HostError> {
        if !valid_client_id(id) {
            return Err(HostError::BadClientId(id.to_owned()));
        }
        Ok(self.dir.join("clients").join(format!("{id}.json")))
    }

    /// The stored client `id`.
    pub fn client(&self, id: &str) -> Result<StoredClient, HostError> {
        let path = self.client_path(id)?;
        if !path.exists() {
            return Err(HostError::UnknownClient(id.to_owned()));
        }
        let f: ClientFile = read_json(&path)?;
        Ok(StoredClient {
            client_type: f.client_type,
            instance: hex::decode(&f.instance).map_err(|e| HostError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
        })
    }

    fn store_client(&self, id: &str, c: &StoredClient) -> Result<(), HostError> {
        let path = self.client_path(id)?;
        let json = serde_json::to_vec(&ClientFile {
            client_type: c.client_type.clone(),
            instance: hex::encode(&c.instance),
        })
        .map_err(|e| HostError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        atomic_write(&path, &json)
    }

    fn signed(resp: Response) -> Result<(Option<StoredClient>, SignedMessage, Address), HostError> {
        match resp {
            Response::Signed {
                client,
                signed,
                signer,
            } => Ok((client, signed, signer)),
            _ => Err(HostError::UnexpectedResponse),
        }
    }

    /// Creates client `id` (the next free `<type>-<n>` if `None`) from bcs states; returns its
    /// id and the signed initial UpdateState.
    pub fn create_client(
        &self,
        id: Option<&str>,
        client_type: &str,
        client_state: Vec<u8>,
        consensus_state: Vec<u8>,
    ) -> Result<(String, SignedMessage, Address), HostError> {
        let _w = self
            .write
            .lock()
            .map_err(|_| HostError::UnexpectedResponse)?;
        let id = match id {
            Some(id) => id.to_owned(),
            None => {
                let mut n = 0u64;
                loop {
                    let candidate = format!("{client_type}-{n}");
                    if !self.client_path(&candidate)?.exists() {
                        break candidate;
                    }
                    n += 1;
                }
            }
        };
        let path = self.client_path(&id)?;
        let resp = self.enclave.call(&Request::CreateClient {
            key: self.sealed_now()?,
            client_type: client_type.to_owned(),
            client_state,
            consensus_state,
        })?;
        let (client, signed, signer) = Self::signed(resp)?;
        let client = client.ok_or(HostError::UnexpectedResponse)?;
        // Re-creating an existing id (restore) replaces it only through this explicit call.
        if path.exists() {
            tracing::warn!(client_id = %id, "client re-created from a trusted state");
        }
        self.store_client(&id, &client)?;
        Ok((id, signed, signer))
    }

    /// Verifies a bcs header for client `id` at `now` and stores the updated client.
    pub fn update_client(
        &self,
        id: &str,
        header: Vec<u8>,
        now: Duration,
    ) -> Result<(SignedMessage, Address), HostError> {
        let _w = self
            .write
            .lock()
            .map_err(|_| HostError::UnexpectedResponse)?;
        let client = self.client(id)?;
        let resp = self.enclave.call(&Request::UpdateClient {
            key: self.sealed_now()?,
            client,
            header,
            now_ns: u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
        })?;
        let (client, signed, signer) = Self::signed(resp)?;
        self.store_client(id, &client.ok_or(HostError::UnexpectedResponse)?)?;
        Ok((signed, signer))
    }

    /// Verifies (non-)membership for client `id`.
    pub fn verify_state(
        &self,
        id: &str,
        height: u64,
        proof: Vec<u8>,
        path: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> Result<(SignedMessage, Address), HostError> {
        let client = self.client(id)?;
        let resp = self.enclave.call(&Request::VerifyState {
            key: self.sealed_now()?,
            client,
            height,
            proof,
            path,
            value,
        })?;
        let (_, signed, signer) = Self::signed(resp)?;
        Ok((signed, signer))
    }

    /// Checks misbehaviour evidence for client `id` and stores the frozen client.
    pub fn submit_misbehaviour(
        &self,
        id: &str,
        evidence: Vec<u8>,
        now: Duration,
    ) -> Result<(SignedMessage, Address), HostError> {
        let _w = self
            .write
            .lock()
            .map_err(|_| HostError::UnexpectedResponse)?;
        let client = self.client(id)?;
        let resp = self.enclave.call(&Request::Misbehaviour {
            key: self.sealed_now()?,
            client,
            evidence,
            now_ns: u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
        })?;
        let (client, signed, signer) = Self::signed(resp)?;
        self.store_client(id, &client.ok_or(HostError::UnexpectedResponse)?)?;
        Ok((signed, signer))
    }

    /// Aggregates consecutive UpdateState messages signed by `signer` (a key of this node).
    pub fn aggregate(
        &self,
        signer: Address,
        messages: Vec<SignedMessage>,
    ) -> Result<(SignedMessage, Address), HostError> {
        let k = self.key(signer)?;
        let sealed = hex::decode(&k.sealed).map_err(|e| HostError::Io {
            path: self.key_path(signer).display().to_string(),
            reason: e.to_string(),
        })?;
        let resp = self.enclave.call(&Request::Aggregate {
            key: sealed,
            messages,
        })?;
        let (_, signed, signer) = Self::signed(resp)?;
        Ok((signed, signer))
    }
}

/// The keys in a node directory (of build `mrenclave` if given), newest attestation first.
pub fn list_keys(dir: &Path, mrenclave: Option<[u8; 32]>) -> Result<Vec<KeyEntry>, HostError> {
    let kd = dir.join("keys");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&kd) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(&kd)(e)),
    };
    for e in entries {
        let p = e.map_err(io_err(&kd))?.path();
        if p.extension().is_some_and(|x| x == "json") {
            let k: KeyEntry = read_json(&p)?;
            if mrenclave.is_none_or(|m| hex::encode(m) == k.mrenclave) {
                out.push(k);
            }
        }
    }
    out.sort_by(|a, b| {
        b.generated_ns
            .cmp(&a.generated_ns)
            .then(a.address.cmp(&b.address))
    });
    Ok(out)
}

/// The report of a key entry.
pub fn key_report(k: &KeyEntry) -> Result<SignedReport, HostError> {
    SignedReport::from_json(k.report.as_bytes()).map_err(|e| HostError::Simulation(e.to_string()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, HostError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|e| HostError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}
