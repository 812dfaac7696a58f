//! `kakehashi ibc ...`: the IBC handler on an EVM chain. `ibc deploy` deploys the handler (its
//! four modules, the IBCHandler implementation, the IBCProxy holding the store) and the ping
//! test app bound to its port, on any EVM JSON-RPC endpoint, and prints the addresses as JSON;
//! `ibc query` reads clients, connections, channels and packet commitments from a handler.
//! No light client is registered: the owner registers one per client type
//! (`registerClient`); the test-only client is for tests and the gas bench only.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolConstructor};
use anyhow::{Context, bail};
use clap::Subcommand;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClient;
use kh_contracts::{
    IBCChannelHandshake, IBCChannelPacket, IBCClient, IBCConnection, IBCHandler, IBCProxy,
    LCPAttestation, LCPClient, PingApp, ibc_commitment_slot,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::evm_tx::{RpcTlsArgs, Sender};
use crate::output::{UsageError, print_json};

/// The environment variable holding the deploying account's key.
const KEY_ENV: &str = "KAKEHASHI_EVM_KEY";

/// IBC handler commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Deploy the IBC handler and the ping app on an EVM JSON-RPC endpoint (prints JSON); the
    /// deploying account's hex key is read from KAKEHASHI_EVM_KEY.
    Deploy(DeployArgs),
    /// Read a client, connection, channel or packet commitment from a deployed handler (JSON).
    Query(QueryArgs),
}

/// Arguments of `ibc query`: an EVM chain (`--rpc` and `--handler`) or the ledger
/// (`--ledger DIR --node NAME`, as `kakehashi ledger --network DIR --node NAME ibc query`).
#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    /// The EVM chain's JSON-RPC endpoint (http:// or https://).
    #[arg(long, required_unless_present = "ledger", conflicts_with = "ledger")]
    rpc: Option<String>,
    /// The handler's address (the proxy printed by `ibc deploy`).
    #[arg(long, required_unless_present = "ledger")]
    handler: Option<Address>,
    /// The ledger network directory (its IBC host is read through `--node`'s RPC; every answer
    /// is proven and checked against the network's keys before it is printed).
    #[arg(long, requires = "node")]
    ledger: Option<std::path::PathBuf>,
    /// The ledger node to ask (organisation or legal name).
    #[arg(long)]
    node: Option<String>,
    /// The ledger node's RPC user to act as.
    #[arg(long, default_value = "admin")]
    user: String,
    /// Block number (EVM) or host height (ledger) to read at (default: latest).
    #[arg(long)]
    height: Option<u64>,
    /// Print JSON (the only format; accepted so the documented command line works).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    tls: RpcTlsArgs,
    #[command(subcommand)]
    what: Query,
}

/// What `ibc query` reads.
#[derive(Debug, Subcommand)]
enum Query {
    /// A client: its light-client contract, type and client-state commitment.
    Client {
        /// Client identifier (e.g. kh-test-only-0).
        client_id: String,
    },
    /// A connection end and its commitment.
    Connection {
        /// Connection identifier (e.g. connection-0).
        connection_id: String,
    },
    /// A channel end and its commitment.
    Channel {
        /// Port identifier.
        port_id: String,
        /// Channel identifier (e.g. channel-0).
        channel_id: String,
    },
    /// A packet commitment (null when absent: never sent, acknowledged or timed out).
    PacketCommitment {
        /// Source port identifier.
        port_id: String,
        /// Source channel identifier.
        channel_id: String,
        /// Packet sequence.
        sequence: u64,
    },
}

/// Arguments of `ibc deploy`. The deploying account, which becomes the handler's owner, is
/// the hex secp256k1 key in the environment variable `KAKEHASHI_EVM_KEY` (never on the
/// command line).
#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {
    /// The chain's JSON-RPC endpoint (http:// or https://).
    #[arg(long)]
    rpc: String,
    /// The port the ping app is bound to.
    #[arg(long, default_value = "ping")]
    port: String,
    /// Seconds to wait for each request and each transaction to be mined.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Also deploy the LCP client (LCPAttestation + LCPClient) trusting this attestation root
    /// certificate (DER, hex — `kakehashi lcp enclave info` prints the simulation root as
    /// `attestation_root_der_hex`), and register it under the client type `lcp-client`.
    #[arg(long)]
    lcp_root_der_hex: Option<String>,
    /// Deploy the LCP client in development mode (accepts debug enclaves).
    #[arg(long, requires = "lcp_root_der_hex")]
    lcp_development_mode: bool,
    #[command(flatten)]
    tls: RpcTlsArgs,
}

/// Addresses of a deployed handler and ping app.
#[derive(Debug, Serialize)]
pub(crate) struct Deployment {
    /// The account that deployed and owns the handler.
    pub(crate) owner: Address,
    /// The handler's address (the IBCProxy, holding the store): every IBC call goes here.
    pub(crate) handler: Address,
    /// The IBCHandler implementation behind the proxy.
    pub(crate) implementation: Address,
    /// The module contracts the implementation delegates to.
    pub(crate) modules: Modules,
    /// The ping app.
    pub(crate) app: Address,
    /// The port the ping app is bound to.
    pub(crate) port: String,
    /// The LCP client, when deployed (client type `lcp-client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lcp_client: Option<Address>,
}

/// The handler's module contracts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Modules {
    pub(crate) client: Address,
    pub(crate) connection: Address,
    pub(crate) channel_handshake: Address,
    pub(crate) channel_packet: Address,
}

/// Deploys the modules, the IBCHandler implementation, the IBCProxy (initialized with the
/// sender as owner) and a ping app bound to `port`.
pub(crate) async fn deploy_stack(sender: &mut Sender, port: &str) -> anyhow::Result<Deployment> {
    let client = sender.deploy(&IBCClient::BYTECODE, vec![], None).await?;
    let connection = sender
        .deploy(&IBCConnection::BYTECODE, vec![], None)
        .await?;
    let channel_handshake = sender
        .deploy(&IBCChannelHandshake::BYTECODE, vec![], None)
        .await?;
    let channel_packet = sender
        .deploy(&IBCChannelPacket::BYTECODE, vec![], None)
        .await?;
    let owner = sender.address();
    let implementation = sender
        .deploy(
            &IBCHandler::BYTECODE,
            IBCHandler::constructorCall {
                client,
                connection,
                channelHandshake: channel_handshake,
                channelPacket: channel_packet,
                owner_: owner,
            }
            .abi_encode(),
            None,
        )
        .await?;
    let handler = sender
        .deploy(
            &IBCProxy::BYTECODE,
            IBCProxy::constructorCall {
                implementation,
                initData: IBCHandler::initializeCall { owner_: owner }
                    .abi_encode()
                    .into(),
            }
            .abi_encode(),
            None,
        )
        .await?;
    let app = sender
        .deploy(
            &PingApp::BYTECODE,
            PingApp::constructorCall {
                handler_: handler,
                portId_: port.into(),
            }
            .abi_encode(),
            None,
        )
        .await?;
    sender
        .call(
            handler,
            IBCClient::bindPortCall {
                portId: port.into(),
                app,
            },
            None,
        )
        .await?;
    Ok(Deployment {
        owner,
        handler,
        implementation,
        modules: Modules {
            client,
            connection,
            channel_handshake,
            channel_packet,
        },
        app,
        port: port.into(),
        lcp_client: None,
    })
}

/// Deploys the LCP client trusting `root_der` on `handler` and registers it as `lcp-client`.
pub(crate) async fn deploy_lcp_client(
    sender: &mut Sender,
    handler: Address,
    root_der: &[u8],
    development_mode: bool,
) -> anyhow::Result<Address> {
    let attestation = sender
        .deploy(&LCPAttestation::BYTECODE, vec![], None)
        .await?;
    let client = sender
        .deploy(
            &LCPClient::BYTECODE,
            LCPClient::constructorCall {
                handler_: handler,
                attestation_: attestation,
                rootCert: root_der.to_vec().into(),
                developmentMode_: development_mode,
            }
            .abi_encode(),
            None,
        )
        .await?;
    sender
        .call(
            handler,
            IBCClient::registerClientCall {
                clientType: "lcp-client".into(),
                lightClient: client,
            },
            None,
        )
        .await?;
    Ok(client)
}

/// Runs an `ibc` subcommand.
pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Deploy(args) => deploy(args).await,
        Command::Query(args) => query(args).await,
    }
}

async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let key = std::env::var(KEY_ENV)
        .map_err(|_| UsageError(format!("set {KEY_ENV} to the deploying account's hex key")))?;
    let key: B256 = key
        .trim()
        .parse()
        .map_err(|_| UsageError("KAKEHASHI_EVM_KEY is not a 32-byte hex key".into()))?;
    let key = PrivateKeySigner::from_bytes(&key)
        .map_err(|_| UsageError("KAKEHASHI_EVM_KEY is not a valid secp256k1 key".into()))?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut sender = Sender::connect_with(&args.rpc, key, timeout, &args.tls)
        .await
        .with_context(|| format!("connecting to {}", args.rpc))?;
    let mut deployment = deploy_stack(&mut sender, &args.port).await?;
    if let Some(root) = &args.lcp_root_der_hex {
        let root = hex::decode(root.trim().trim_start_matches("0x"))
            .map_err(|_| UsageError("--lcp-root-der-hex is not hex".into()))?;
        deployment.lcp_client = Some(
            deploy_lcp_client(
                &mut sender,
                deployment.handler,
                &root,
                args.lcp_development_mode,
            )
            .await?,
        );
    }
    print_json(&deployment)
}

/// `eth_call` of `call` on `to` at `block`.
async fn eth_call<T: SolCall>(
    client: &HttpClient,
    to: Address,
    call: T,
    block: &Value,
) -> anyhow::Result<T::Return> {
    let out: Bytes = client
        .request(
            "eth_call",
            vec![
                json!({"to": to, "data": Bytes::from(call.abi_encode())}),
                block.clone(),
            ],
        )
        .await
        .with_context(|| format!("eth_call {}", T::SIGNATURE))?;
    T::abi_decode_returns(&out).with_context(|| format!("decoding {}", T::SIGNATURE))
}

/// The stored commitment of `path`, or null, with its storage slot.
async fn commitment(
    client: &HttpClient,
    handler: Address,
    path: String,
    block: &Value,
) -> anyhow::Result<Value> {
    let c = eth_call(
        client,
        handler,
        IBCHandler::getCommitmentCall { path: path.clone() },
        block,
    )
    .await?;
    Ok(json!({
        "path": path,
        "slot": ibc_commitment_slot(&path),
        "commitment": if c == B256::ZERO { Value::Null } else { json!(c) },
    }))
}

async fn query(args: QueryArgs) -> anyhow::Result<()> {
    if let Some(network) = args.ledger {
        use crate::ledger_ibc::IbcQuery as L;
        let what = match args.what {
            Query::Client { client_id } => L::Client { client_id },
            Query::Connection { connection_id } => L::Connection { connection_id },
            Query::Channel {
                port_id,
                channel_id,
            } => L::Channel {
                port: port_id,
                channel: channel_id,
            },
            Query::PacketCommitment {
                port_id,
                channel_id,
                sequence,
            } => L::PacketCommitment {
                port: port_id,
                channel: channel_id,
                sequence,
            },
        };
        return crate::ledger::ibc_query(
            network,
            args.node.unwrap_or_default(),
            args.user,
            what,
            args.height.unwrap_or(0),
        )
        .await;
    }
    let (Some(rpc), Some(h)) = (args.rpc, args.handler) else {
        return Err(UsageError("give --rpc and --handler, or --ledger and --node".into()).into());
    };
    let client = args.tls.client(&rpc, Duration::from_secs(30))?;
    let block = match args.height {
        Some(h) => json!(format!("{h:#x}")),
        None => json!("latest"),
    };
    let out = match args.what {
        Query::Client { client_id } => {
            let r = eth_call(
                &client,
                h,
                IBCHandler::getClientCall {
                    clientId: client_id.clone(),
                },
                &block,
            )
            .await?;
            if r.lightClient == Address::ZERO {
                bail!("no client {client_id}");
            }
            json!({
                "client_id": client_id,
                "client_type": r.clientType,
                "light_client": r.lightClient,
                "client_state": commitment(&client, h, format!("clients/{client_id}/clientState"), &block).await?,
            })
        }
        Query::Connection { connection_id } => {
            let c = eth_call(
                &client,
                h,
                IBCHandler::getConnectionCall {
                    connectionId: connection_id.clone(),
                },
                &block,
            )
            .await?;
            if c.state == 0 {
                bail!("no connection {connection_id}");
            }
            json!({
                "connection_id": connection_id,
                "state": CONNECTION_STATES.get(usize::from(c.state)).copied().unwrap_or("UNKNOWN"),
                "client_id": c.clientId,
                "light_client": c.lightClient,
                "delay_period": c.delayPeriod,
                "counterparty": {
                    "client_id": c.counterpartyClientId,
                    "connection_id": c.counterpartyConnectionId,
                    "prefix": Bytes::from(c.counterpartyPrefix.to_vec()),
                },
                "commitment": commitment(&client, h, format!("connections/{connection_id}"), &block).await?,
            })
        }
        Query::Channel {
            port_id,
            channel_id,
        } => {
            let c = eth_call(
                &client,
                h,
                IBCHandler::getChannelCall {
                    portId: port_id.clone(),
                    channelId: channel_id.clone(),
                },
                &block,
            )
            .await?;
            if c.state == 0 {
                bail!("no channel {port_id}/{channel_id}");
            }
            json!({
                "port_id": port_id,
                "channel_id": channel_id,
                "state": CHANNEL_STATES.get(usize::from(c.state)).copied().unwrap_or("UNKNOWN"),
                "ordering": ORDERS.get(usize::from(c.ordering)).copied().unwrap_or("UNKNOWN"),
                "connection_id": c.connectionId,
                "version": c.version,
                "counterparty": {"port_id": c.counterpartyPortId, "channel_id": c.counterpartyChannelId},
                "next_sequence_send": c.nextSequenceSend,
                "next_sequence_recv": c.nextSequenceRecv,
                "next_sequence_ack": c.nextSequenceAck,
                "commitment": commitment(&client, h, format!("channelEnds/ports/{port_id}/channels/{channel_id}"), &block).await?,
            })
        }
        Query::PacketCommitment {
            port_id,
            channel_id,
            sequence,
        } => {
            commitment(
                &client,
                h,
                format!("commitments/ports/{port_id}/channels/{channel_id}/sequences/{sequence}"),
                &block,
            )
            .await?
        }
    };
    print_json(&out)
}

const CONNECTION_STATES: [&str; 4] = ["UNINITIALIZED", "INIT", "TRYOPEN", "OPEN"];
const CHANNEL_STATES: [&str; 5] = ["UNINITIALIZED", "INIT", "TRYOPEN", "OPEN", "CLOSED"];
const ORDERS: [&str; 3] = ["NONE", "UNORDERED", "ORDERED"];
