//! `kakehashi ibc ...`: the IBC handler on an EVM chain. `ibc deploy` deploys the handler (its
//! four modules, the IBCHandler implementation, the IBCProxy holding the store) and the ping
//! test app bound to its port, on any EVM JSON-RPC endpoint, and prints the addresses as JSON.
//! No light client is registered: the owner registers one per client type
//! (`registerClient`); the test-only client is for tests and the gas bench only.

use std::time::Duration;

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolConstructor;
use anyhow::Context;
use clap::Subcommand;
use kh_contracts::{
    IBCChannelHandshake, IBCChannelPacket, IBCClient, IBCConnection, IBCHandler, IBCProxy, PingApp,
};
use serde::Serialize;

use crate::evm_tx::Sender;
use crate::output::{UsageError, print_json};

/// The environment variable holding the deploying account's key.
const KEY_ENV: &str = "KAKEHASHI_EVM_KEY";

/// IBC handler commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Deploy the IBC handler and the ping app on an EVM JSON-RPC endpoint (prints JSON); the
    /// deploying account's hex key is read from KAKEHASHI_EVM_KEY.
    Deploy(DeployArgs),
}

/// Arguments of `ibc deploy`. The deploying account, which becomes the handler's owner, is
/// the hex secp256k1 key in the environment variable `KAKEHASHI_EVM_KEY` (never on the
/// command line).
#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {
    /// The chain's JSON-RPC endpoint (HTTP).
    #[arg(long)]
    rpc: String,
    /// The port the ping app is bound to.
    #[arg(long, default_value = "ping")]
    port: String,
    /// Seconds to wait for each request and each transaction to be mined.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
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
                initData: alloy_sol_types::SolCall::abi_encode(&IBCHandler::initializeCall {
                    owner_: owner,
                })
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
    })
}

/// Runs an `ibc` subcommand.
pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Deploy(args) => deploy(args).await,
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
    let mut sender = Sender::connect(&args.rpc, key, Duration::from_secs(args.timeout_secs))
        .await
        .with_context(|| format!("connecting to {}", args.rpc))?;
    let deployment = deploy_stack(&mut sender, &args.port).await?;
    print_json(&deployment)
}
