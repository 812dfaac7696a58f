//! `kakehashi ledger --network DIR --node NAME <command>`: client commands against a ledger
//! node's RPC (mutual TLS with the client certificate of the network directory).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use kh_ledger_node::proto;
use serde_json::json;

use crate::output::{UsageError, print_json};

/// Arguments of `ledger`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The network directory (written by `kakehashi devnet ledger`); client commands.
    #[arg(long)]
    network: Option<PathBuf>,
    /// The node to talk to: its organisation (`PartyA`) or full legal name; client commands.
    #[arg(long)]
    node: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node as this process (until Ctrl-C / SIGTERM).
    Node {
        /// The node's node.toml (see `kakehashi devnet ledger --init-only`).
        #[arg(long)]
        config: PathBuf,
        /// Test only: stop processing at a failpoint (crash-after-notarise-request,
        /// crash-after-key-response), to exercise cold standby.
        #[arg(long, hide = true)]
        failpoint: Option<String>,
    },
    /// Account management.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Issue stablecoin (on the bank) to NODE/ACCOUNT_ID.
    Issue {
        /// Amount in smallest units.
        #[arg(long)]
        amount: u64,
        /// Receiving account as NODE/ACCOUNT_ID.
        #[arg(long)]
        to: String,
        /// Currency code.
        #[arg(long, default_value = "JPY")]
        currency: String,
    },
    /// Pay from an account of this node to NODE/ACCOUNT_ID.
    Pay {
        /// Amount in smallest units.
        #[arg(long)]
        amount: u64,
        /// Paying account id (on this node).
        #[arg(long)]
        from: String,
        /// Receiving account as NODE/ACCOUNT_ID.
        #[arg(long)]
        to: String,
    },
    /// Redeem stablecoin held by an account (its issuer co-signs).
    Redeem {
        /// Account id.
        #[arg(long)]
        account: String,
        /// Amount in smallest units.
        #[arg(long)]
        amount: u64,
    },
    /// Pre-split an account's holding into N states.
    Split {
        /// Account id.
        #[arg(long)]
        account: String,
        /// Number of states.
        #[arg(long)]
        parts: u32,
    },
    /// An account's balance and states.
    Vault {
        /// Account id.
        #[arg(long)]
        account: String,
    },
    /// Transactions.
    #[command(subcommand)]
    Tx(TxCommand),
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Create an account with a key held by the node.
    Create {
        /// A label.
        label: String,
    },
    /// List the node's accounts.
    List,
}

#[derive(Debug, Subcommand)]
enum TxCommand {
    /// Show a transaction the node has (exit 1 when it does not).
    Show {
        /// Transaction id.
        tx_id: String,
    },
}

const FLOW_TIMEOUT_MS: u64 = 60_000;

fn split_target(to: &str) -> anyhow::Result<(String, String)> {
    let (node, account) = to
        .split_once('/')
        .ok_or_else(|| UsageError(format!("--to must be NODE/ACCOUNT_ID, got {to:?}")))?;
    Ok((node.to_string(), account.to_string()))
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}

/// Runs a `ledger` client command.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if let Command::Node { config, failpoint } = &args.command {
        return run_node(config, failpoint.as_deref()).await;
    }
    let (Some(network), Some(node)) = (args.network.clone(), args.node.clone()) else {
        return Err(UsageError("client commands need --network DIR and --node NAME".into()).into());
    };
    let (directory, root, client) =
        kh_ledger_node::NetworkDirectory::read(&network).map_err(|e| UsageError(e.to_string()))?;
    let (_, endpoints) = directory
        .node(&node)
        .map_err(|e| UsageError(e.to_string()))?;
    let mut rpc = kh_ledger_node::connect_rpc(endpoints.rpc, &client, &root)
        .await
        .with_context(|| format!("connecting to {node} at {}", endpoints.rpc))?;
    let value = match args.command {
        Command::Node { .. } => unreachable!("handled above"),
        Command::Accounts(AccountsCommand::Create { label }) => {
            let a = rpc
                .create_account(proto::CreateAccountRequest { label })
                .await
                .map_err(status_error)?
                .into_inner();
            if !args.json {
                println!("{}", a.id);
                return Ok(());
            }
            json!({"id": a.id, "label": a.label, "public_key": a.public_key})
        }
        Command::Accounts(AccountsCommand::List) => {
            let list = rpc
                .list_accounts(proto::ListAccountsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if !args.json {
                for a in &list.accounts {
                    println!("{} {}", a.id, a.label);
                }
                return Ok(());
            }
            json!({"accounts": list.accounts.iter().map(|a| json!({"id": a.id, "label": a.label, "public_key": a.public_key})).collect::<Vec<_>>()})
        }
        Command::Issue {
            amount,
            to,
            currency,
        } => {
            let (to_node, to_account) = split_target(&to)?;
            let flow = proto::run_flow_request::Flow::Issue(proto::Issue {
                amount,
                currency,
                to_node,
                to_account,
            });
            flow_result(&mut rpc, flow).await?
        }
        Command::Pay { amount, from, to } => {
            let (to_node, to_account) = split_target(&to)?;
            let flow = proto::run_flow_request::Flow::Pay(proto::Pay {
                amount,
                from_account: from,
                to_node,
                to_account,
            });
            flow_result(&mut rpc, flow).await?
        }
        Command::Redeem { account, amount } => {
            let flow = proto::run_flow_request::Flow::Redeem(proto::Redeem { account, amount });
            flow_result(&mut rpc, flow).await?
        }
        Command::Split { account, parts } => {
            let flow = proto::run_flow_request::Flow::Split(proto::Split { account, parts });
            flow_result(&mut rpc, flow).await?
        }
        Command::Vault { account } => {
            let v = rpc
                .vault(proto::VaultRequest { account })
                .await
                .map_err(status_error)?
                .into_inner();
            if !args.json {
                println!("balance {}", v.balance);
                for s in &v.states {
                    println!("  {}({}) {} {}", s.tx_id, s.index, s.amount, s.currency);
                }
                return Ok(());
            }
            json!({"balance": v.balance, "states": v.states.iter().map(|s| json!({"tx_id": s.tx_id, "index": s.index, "amount": s.amount, "currency": s.currency, "issuer": s.issuer})).collect::<Vec<_>>()})
        }
        Command::Tx(TxCommand::Show { tx_id }) => {
            let t = rpc
                .get_transaction(proto::GetTransactionRequest {
                    tx_id: tx_id.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if !t.found {
                bail!("node {node} does not have transaction {tx_id}");
            }
            json!({"tx_id": tx_id, "inputs": t.inputs, "outputs": t.outputs, "signers": t.signers})
        }
    };
    if args.json {
        print_json(&value)
    } else if let (Some(tx), Some(_)) = (
        value.get("tx_id").and_then(|t| t.as_str()),
        value.get("flow_id"),
    ) {
        println!("{tx}");
        Ok(())
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
        Ok(())
    }
}

async fn run_node(config: &std::path::Path, failpoint: Option<&str>) -> anyhow::Result<()> {
    let failpoint = match failpoint {
        None => None,
        Some("crash-after-notarise-request") => {
            Some(kh_ledger::Failpoint::CrashAfterNotariseRequest)
        }
        Some("crash-after-key-response") => Some(kh_ledger::Failpoint::CrashAfterKeyResponse),
        Some(other) => return Err(UsageError(format!("unknown failpoint {other:?}")).into()),
    };
    let running = crate::devnet_ledger::start_node(config, failpoint).await?;
    println!("ledger node {} running", running.node.name());
    crate::signal::shutdown_signal().await;
    running.node.shutdown();
    Ok(())
}

async fn flow_result(
    rpc: &mut kh_ledger_node::RpcClient,
    flow: proto::run_flow_request::Flow,
) -> anyhow::Result<serde_json::Value> {
    let r = rpc
        .run_flow(proto::RunFlowRequest {
            flow: Some(flow),
            timeout_ms: FLOW_TIMEOUT_MS,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    match r.status.as_str() {
        "completed" => Ok(json!({"tx_id": r.tx_id, "flow_id": r.flow_id})),
        "failed" => bail!("flow {} failed: {}", r.flow_id, r.reason),
        _ => bail!(
            "flow {} still running after {} s ({})",
            r.flow_id,
            FLOW_TIMEOUT_MS / 1000,
            r.reason
        ),
    }
}
