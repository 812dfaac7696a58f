//! `kakehashi ledger --network DIR --node NAME [--user USER] <command>`: client commands
//! against a ledger node's RPC (mutual TLS with the certificate of one of that node's RPC
//! users, `admin` unless `--user` says otherwise); `ledger users add|list` manages the users.

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
    /// The node's RPC user to act as (its certificate is DIR/nodes/<Org>/rpc-USER.pem/.key).
    #[arg(long, default_value = "admin")]
    user: String,
    /// Print one JSON object instead of text (streaming commands: one object per line).
    #[arg(long, global = true)]
    json: bool,
    /// Flow commands (issue, pay, redeem, split): return the flow id at once instead of
    /// waiting for the transaction; follow it with `flow status|wait|watch FLOW_ID`.
    #[arg(long, global = true)]
    no_wait: bool,
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
        /// crash-after-key-response), to exercise cold standby; overrides the config's.
        #[arg(long, hide = true)]
        failpoint: Option<String>,
        /// Only read and validate the config, then exit (2 when it is wrong).
        #[arg(long)]
        check: bool,
        /// Cold standby: when another live node holds the database, wait (polling every 200 ms,
        /// binding no port) until it dies, then take over. Without it, a held database is an
        /// error.
        #[arg(long)]
        standby: bool,
    },
    /// Account management.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// The node's RPC users (needs the network root's key, DIR/root.key).
    #[command(subcommand)]
    Users(crate::ledger_users::UsersCommand),
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
        /// A Validator node (third party) that must check and co-sign the payment.
        #[arg(long)]
        validator: Option<String>,
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
    /// The transactions this node co-signed as a Validator.
    Validations,
    /// The IBC host on this node (the ibc-host app).
    #[command(subcommand)]
    Ibc(IbcCommand),
    /// Move states consumed more than --older-than-ms ago, and transactions with no live state
    /// left, out of the live vault (they stay findable with `tx show`); forget flows that
    /// finished before then.
    Archive {
        /// Retention in milliseconds (0: everything consumed so far).
        #[arg(long)]
        older_than_ms: u64,
    },
    /// States of any app in the node's vault (filtered, paged): `states --contract
    /// kakehashi.record.v1 --status consumed --limit 10`.
    States {
        /// Contract id (the state's type).
        #[arg(long)]
        contract: Option<String>,
        /// One of the node's accounts (its key is the owner).
        #[arg(long)]
        account: Option<String>,
        /// Owner key (hex).
        #[arg(long)]
        owner: Option<String>,
        /// A participant's key (hex).
        #[arg(long)]
        participant: Option<String>,
        /// unconsumed, consumed or archived.
        #[arg(long, default_value = "unconsumed")]
        status: String,
        /// States skipped.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Most states returned (0: the node's maximum page).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Follow flows started with --no-wait.
    #[command(subcommand)]
    Flow(FlowCommand),
    /// The transactions the node recorded, one event each in commit order (cursor, tx id,
    /// consumed and produced states with their contracts, the recording flow): those after
    /// --after, then with --follow each new one until Ctrl-C or --limit N. One JSON object per
    /// line with --json; resume with the last cursor printed.
    Events {
        /// Print only events with a larger cursor (0: from the first).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep following new events.
        #[arg(long)]
        follow: bool,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Stream an account's vault: the current balance and states, then one update per change
    /// (one JSON object per line with --json) until Ctrl-C or --updates N.
    Watch {
        /// Account id.
        #[arg(long)]
        account: String,
        /// Stop after this many updates (the first is the current vault).
        #[arg(long)]
        updates: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Start any flow of the node's apps by name (`flow list` shows them), e.g.
    /// `flow start record.create --args '{"counterparty":"PartyB","text":"hello"}'`; waits for
    /// it unless --no-wait is given.
    Start {
        /// The flow's name.
        name: String,
        /// Its arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// The flows (and apps) the node offers.
    List,
    /// Kill a running flow: it ends failed with the reason and its soft locks are released.
    Kill {
        /// Flow id.
        flow_id: String,
        /// Why (recorded as the flow's failure reason).
        #[arg(long, default_value = "killed by the operator")]
        reason: String,
    },
    /// A flow's current status.
    Status {
        /// Flow id.
        flow_id: String,
    },
    /// Wait until the flow finished (exit 1 if it failed or is still running at the timeout).
    Wait {
        /// Flow id.
        flow_id: String,
        /// Longest wait in milliseconds.
        #[arg(long, default_value_t = FLOW_TIMEOUT_MS)]
        timeout_ms: u64,
    },
    /// Stream the flow's status on every change until it finishes.
    Watch {
        /// Flow id.
        flow_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum IbcCommand {
    /// A ledger proof that the IBC store holds PATH (and its value) or not, at host height
    /// HEIGHT, checked here against the network's notary key and the operators the host state
    /// names (a light client pins its own operator keys instead).
    Proof {
        /// The store path (an ICS-24 path such as `clients/07-tendermint-0/clientState`).
        #[arg(long)]
        path: String,
        /// The host height (0: the node's latest).
        #[arg(long, default_value_t = 0)]
        height: u64,
    },
    /// A client, connection, channel or packet commitment of the ledger's IBC store, proven
    /// and decoded (protobuf as ibc-go stores it).
    Query {
        /// What to read.
        #[command(subcommand)]
        what: crate::ledger_ibc::IbcQuery,
        /// The host height (0: the node's latest).
        #[arg(long, default_value_t = 0, global = true)]
        height: u64,
    },
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
        /// Also print the whole signed transaction (BCS, hex) with its signatures.
        #[arg(long)]
        whole: bool,
        /// Fetch a filtered form revealing these component groups (comma-separated: inputs,
        /// outputs, commands, notary, time-window, references) with their Merkle proofs and the
        /// signatures, check it here with the network's public keys only, and print it (the
        /// revealed components decoded, and the BCS bytes in hex).
        #[arg(long, value_name = "GROUPS")]
        filtered: Option<String>,
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
/// `kakehashi ibc query --ledger DIR --node NAME …`: the same as `kakehashi ledger --network
/// DIR --node NAME ibc query …`.
pub(crate) async fn ibc_query(
    network: PathBuf,
    node: String,
    user: String,
    what: crate::ledger_ibc::IbcQuery,
    height: u64,
) -> anyhow::Result<()> {
    run(Args {
        network: Some(network),
        node: Some(node),
        user,
        json: true,
        no_wait: false,
        command: Command::Ibc(IbcCommand::Query { what, height }),
    })
    .await
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if let Command::Node {
        config,
        failpoint,
        check,
        standby,
    } = &args.command
    {
        if *check {
            let c = crate::devnet_ledger::read_config(config)?;
            let value = json!({"valid": true, "name": c.name, "role": c.role});
            return if args.json {
                print_json(&value)
            } else {
                println!("{}: valid configuration of {}", config.display(), c.name);
                Ok(())
            };
        }
        return run_node(config, failpoint.as_deref(), *standby).await;
    }
    let (Some(network), Some(node)) = (args.network.clone(), args.node.clone()) else {
        return Err(UsageError("client commands need --network DIR and --node NAME".into()).into());
    };
    let (directory, root) =
        kh_ledger_node::NetworkDirectory::read(&network).map_err(|e| UsageError(e.to_string()))?;
    let (name, endpoints) = directory
        .node(&node)
        .map_err(|e| UsageError(e.to_string()))?;
    if let Command::Users(users) = &args.command {
        return crate::ledger_users::run(&network, &name, users, args.json);
    }
    let client = kh_ledger_node::NetworkDirectory::client_identity(
        &network,
        name.organisation(),
        &args.user,
    )
    .map_err(|e| UsageError(format!("RPC user {:?} of {node}: {e}", args.user)))?;
    let mut rpc = kh_ledger_node::connect_rpc(endpoints.rpc, &client, &root)
        .await
        .with_context(|| format!("connecting to {node} at {}", endpoints.rpc))?;
    let value = match args.command {
        Command::Node { .. } | Command::Users(_) => unreachable!("handled above"),
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
            flow_result(&mut rpc, flow, args.no_wait).await?
        }
        Command::Pay {
            amount,
            from,
            to,
            validator,
        } => {
            let (to_node, to_account) = split_target(&to)?;
            let flow = proto::run_flow_request::Flow::Pay(proto::Pay {
                amount,
                from_account: from,
                to_node,
                to_account,
                validator: validator.unwrap_or_default(),
            });
            flow_result(&mut rpc, flow, args.no_wait).await?
        }
        Command::Redeem { account, amount } => {
            let flow = proto::run_flow_request::Flow::Redeem(proto::Redeem { account, amount });
            flow_result(&mut rpc, flow, args.no_wait).await?
        }
        Command::Split { account, parts } => {
            let flow = proto::run_flow_request::Flow::Split(proto::Split { account, parts });
            flow_result(&mut rpc, flow, args.no_wait).await?
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
            vault_json(&v)
        }
        Command::Tx(TxCommand::Show {
            tx_id,
            whole,
            filtered,
        }) => {
            let reveal = match &filtered {
                Some(text) => {
                    let groups =
                        kh_ledger::parse_groups(text).map_err(|e| UsageError(e.to_string()))?;
                    if groups.is_empty() {
                        return Err(UsageError("--filtered needs at least one group".into()).into());
                    }
                    groups.iter().map(|g| g.name().to_string()).collect()
                }
                None => vec![],
            };
            let t = rpc
                .get_transaction(proto::GetTransactionRequest {
                    tx_id: tx_id.clone(),
                    whole,
                    reveal,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if !t.found {
                bail!("node {node} does not have transaction {tx_id}");
            }
            let mut value = json!({"tx_id": tx_id, "inputs": t.inputs, "outputs": t.outputs, "signers": t.signers});
            if whole {
                value["signed_transaction"] = json!(hex::encode(&t.signed_transaction));
            }
            if filtered.is_some() {
                value["filtered"] = checked_filtered(&directory.network, &tx_id, &t)?;
            }
            value
        }
        Command::Events {
            after,
            follow,
            limit,
        } => {
            let mut stream = rpc
                .events(proto::EventsRequest {
                    after_cursor: after,
                    follow,
                    limit: limit.unwrap_or(0),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            loop {
                let next = tokio::select! {
                    next = stream.message() => next.map_err(status_error)?,
                    () = crate::signal::shutdown_signal() => None,
                };
                let Some(e) = next else { break };
                let flow = if e.flow_id.is_empty() {
                    "-"
                } else {
                    &e.flow_id
                };
                let text = format!(
                    "{} {} consumed {} produced {} flow {flow}",
                    e.cursor,
                    e.tx_id,
                    e.consumed.len(),
                    e.produced.len()
                );
                print_line(args.json, &event_json(&e), &text)?;
            }
            return Ok(());
        }
        Command::Archive { older_than_ms } => {
            let r = rpc
                .archive(proto::ArchiveRequest { older_than_ms })
                .await
                .map_err(status_error)?
                .into_inner();
            json!({"states": r.states, "transactions": r.transactions, "flows": r.flows})
        }
        Command::States {
            contract,
            account,
            owner,
            participant,
            status,
            offset,
            limit,
        } => {
            let r = rpc
                .query_states(proto::QueryStatesRequest {
                    contract: contract.unwrap_or_default(),
                    account: account.unwrap_or_default(),
                    owner: owner.unwrap_or_default(),
                    participant: participant.unwrap_or_default(),
                    status,
                    offset,
                    limit,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if !args.json {
                for s in &r.states {
                    println!("{}:{} {}", s.tx_id, s.index, s.contract);
                }
                return Ok(());
            }
            json!({"states": r.states.iter().map(|s| json!({"tx_id": s.tx_id, "index": s.index, "contract": s.contract, "participants": s.participants, "notary": s.notary, "data": hex::encode(&s.data)})).collect::<Vec<_>>()})
        }
        Command::Ibc(IbcCommand::Proof { path, height }) => {
            crate::ledger_ibc::proven(&mut rpc, directory.network.notary.owning_key, &path, height)
                .await?
                .json
        }
        Command::Ibc(IbcCommand::Query { what, height }) => {
            crate::ledger_ibc::query(&mut rpc, directory.network.notary.owning_key, what, height)
                .await?
        }
        Command::Validations => {
            let list = rpc
                .list_validations(proto::ListValidationsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if !args.json {
                for v in &list.validations {
                    println!("{} {} {}", v.tx_id, v.validated_ms, v.requester);
                }
                return Ok(());
            }
            json!({"validations": list.validations.iter().map(|v| json!({"tx_id": v.tx_id, "requester": v.requester, "validated_ms": v.validated_ms})).collect::<Vec<_>>()})
        }
        Command::Flow(FlowCommand::Start {
            name,
            args: flow_args,
        }) => {
            let flow = proto::run_flow_request::Flow::Generic(proto::GenericFlow {
                name,
                args_json: flow_args,
            });
            flow_result(&mut rpc, flow, args.no_wait).await?
        }
        Command::Flow(FlowCommand::List) => {
            let r = rpc
                .list_flows(proto::ListFlowsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if !args.json {
                for f in &r.flows {
                    println!("{f}");
                }
                return Ok(());
            }
            json!({"flows": r.flows, "apps": r.apps})
        }
        Command::Flow(FlowCommand::Kill { flow_id, reason }) => {
            let r = rpc
                .kill_flow(proto::KillFlowRequest { flow_id, reason })
                .await
                .map_err(status_error)?
                .into_inner();
            flow_json(&r)
        }
        Command::Flow(FlowCommand::Status { flow_id }) => {
            let r = rpc
                .flow_status(proto::FlowStatusRequest { flow_id })
                .await
                .map_err(status_error)?
                .into_inner();
            flow_json(&r)
        }
        Command::Flow(FlowCommand::Wait {
            flow_id,
            timeout_ms,
        }) => {
            let r = rpc
                .wait_flow(proto::WaitFlowRequest {
                    flow_id,
                    timeout_ms,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            finished(&r, timeout_ms)?
        }
        Command::Flow(FlowCommand::Watch { flow_id }) => {
            let mut stream = rpc
                .watch_flow(proto::FlowStatusRequest { flow_id })
                .await
                .map_err(status_error)?
                .into_inner();
            while let Some(r) = stream.message().await.map_err(status_error)? {
                let detail = if r.tx_id.is_empty() {
                    &r.reason
                } else {
                    &r.tx_id
                };
                print_line(args.json, &flow_json(&r), &format!("{} {detail}", r.status))?;
            }
            return Ok(());
        }
        Command::Watch { account, updates } => {
            let mut stream = rpc
                .subscribe(proto::VaultRequest { account })
                .await
                .map_err(status_error)?
                .into_inner();
            let mut seen = 0u64;
            while updates.is_none_or(|n| seen < n) {
                let next = tokio::select! {
                    next = stream.message() => next.map_err(status_error)?,
                    () = crate::signal::shutdown_signal() => None,
                };
                let Some(v) = next else { break };
                let text = format!("balance {} in {} states", v.balance, v.states.len());
                print_line(args.json, &vault_json(&v), &text)?;
                seen += 1;
            }
            return Ok(());
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

async fn run_node(
    config: &std::path::Path,
    failpoint: Option<&str>,
    standby: bool,
) -> anyhow::Result<()> {
    let failpoint = failpoint
        .map(|f| f.parse::<kh_ledger_node::FailpointName>())
        .transpose()
        .map_err(|e| UsageError(e.to_string()))?
        .map(kh_ledger::Failpoint::from);
    let start = crate::devnet_ledger::start_node_with(config, failpoint, standby);
    let running = tokio::select! {
        running = start => running?,
        () = crate::signal::shutdown_signal() => return Ok(()),
    };
    println!("ledger node {} running", running.node.name());
    crate::signal::shutdown_signal().await;
    running.node.shutdown();
    Ok(())
}

fn vault_json(v: &proto::VaultResponse) -> serde_json::Value {
    json!({"balance": v.balance, "states": v.states.iter().map(|s| json!({"tx_id": s.tx_id, "index": s.index, "amount": s.amount, "currency": s.currency, "issuer": s.issuer})).collect::<Vec<_>>()})
}

fn state_ref_json(r: &proto::StateRef) -> serde_json::Value {
    json!({"tx_id": r.tx_id, "index": r.index})
}

fn event_json(e: &proto::LedgerEvent) -> serde_json::Value {
    json!({
        "cursor": e.cursor,
        "tx_id": e.tx_id,
        "consumed": e.consumed.iter().map(state_ref_json).collect::<Vec<_>>(),
        "produced": e.produced.iter().map(|p| json!({
            "state": p.state.as_ref().map(state_ref_json),
            "contract": p.contract,
        })).collect::<Vec<_>>(),
        "flow_id": if e.flow_id.is_empty() { serde_json::Value::Null } else { json!(e.flow_id) },
        "recorded_ms": e.recorded_ms,
    })
}

/// Decodes the filtered transaction of `t`, checks it as a light client would (Merkle proofs
/// to the id asked for, every signature, the notary's signature when the transaction has
/// inputs, and the signers of the revealed commands), and describes what it reveals.
fn checked_filtered(
    network: &kh_ledger::NetworkParameters,
    tx_id: &str,
    t: &proto::GetTransactionResponse,
) -> anyhow::Result<serde_json::Value> {
    use kh_ledger::{
        Command, ComponentGroup, FilteredTransaction, Party, StateRef, TimeWindow,
        TransactionSignature, TransactionState,
    };
    let ftx: FilteredTransaction = bcs::from_bytes(&t.filtered_transaction)
        .context("the node's filtered transaction does not decode")?;
    let sigs: Vec<TransactionSignature> =
        bcs::from_bytes(&t.signatures).context("the node's signatures do not decode")?;
    let asked: kh_ledger::TxId = tx_id
        .parse()
        .map_err(|e: kh_ledger::ParseHashError| UsageError(e.to_string()))?;
    if ftx.id != asked {
        bail!("the node answered for transaction {}, not {asked}", ftx.id);
    }
    // A transaction without inputs (an issuance) is not notarised; the proof shows whether the
    // inputs group is empty even when it is not revealed.
    let has_inputs = !matches!(
        ftx.whole_group::<StateRef>(ComponentGroup::Inputs),
        Ok(inputs) if inputs.is_empty()
    );
    let required: Vec<kh_ledger::PublicKey> = if has_inputs {
        vec![network.notary.owning_key]
    } else {
        vec![]
    };
    kh_ledger::verify_filtered_transaction(&ftx, &sigs, &required)
        .context("the filtered transaction does not verify")?;
    let mut revealed = serde_json::Map::new();
    for g in &ftx.groups {
        let items: Vec<serde_json::Value> = g
            .components
            .iter()
            .map(|c| {
                let decoded = match g.group {
                    ComponentGroup::Inputs | ComponentGroup::References => bcs::from_bytes::<
                        StateRef,
                    >(
                        &c.bytes
                    )
                    .map(|r| json!({"tx_id": r.tx_id.to_string(), "index": r.index})),
                    ComponentGroup::Outputs => {
                        bcs::from_bytes::<TransactionState>(&c.bytes).map(|s| {
                            json!({
                                "contract": s.contract.to_string(),
                                "notary": s.notary.name.to_string(),
                                "participants": s.participants.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                                "data": hex::encode(&s.data),
                            })
                        })
                    }
                    ComponentGroup::Commands => bcs::from_bytes::<Command>(&c.bytes).map(|c| {
                        json!({
                            "contract": c.contract.to_string(),
                            "signers": c.signers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                            "data": hex::encode(&c.data),
                        })
                    }),
                    ComponentGroup::Notary => bcs::from_bytes::<Party>(&c.bytes)
                        .map(|p| json!({"name": p.name.to_string(), "key": p.owning_key.to_string()})),
                    ComponentGroup::TimeWindow => bcs::from_bytes::<TimeWindow>(&c.bytes)
                        .map(|w| json!({"from_ms": w.from_ms, "until_ms": w.until_ms})),
                };
                let decoded = decoded.unwrap_or(serde_json::Value::Null);
                json!({"index": c.index, "value": decoded})
            })
            .collect();
        revealed.insert(
            g.group.name().to_string(),
            json!({"count": g.count, "components": items}),
        );
    }
    Ok(json!({
        "verified": true,
        "required_keys": required.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "signed_by": sigs.iter().map(|s| s.by.to_string()).collect::<Vec<_>>(),
        "revealed": revealed,
        "filtered_transaction": hex::encode(&t.filtered_transaction),
        "signatures": hex::encode(&t.signatures),
    }))
}

fn flow_json(r: &proto::FlowResult) -> serde_json::Value {
    let mut v = json!({"flow_id": r.flow_id, "status": r.status});
    if !r.tx_id.is_empty() {
        v["tx_id"] = json!(r.tx_id);
    }
    if !r.reason.is_empty() {
        v[if r.status == "running" {
            "step"
        } else {
            "reason"
        }] = json!(r.reason);
    }
    v
}

/// One line of a streaming command: compact JSON, or `text`.
fn print_line(json: bool, value: &serde_json::Value, text: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

/// A finished flow's result, or the reason it did not finish.
fn finished(r: &proto::FlowResult, waited_ms: u64) -> anyhow::Result<serde_json::Value> {
    match r.status.as_str() {
        "completed" => Ok(json!({"tx_id": r.tx_id, "flow_id": r.flow_id})),
        "failed" => bail!("flow {} failed: {}", r.flow_id, r.reason),
        _ => bail!(
            "flow {} still running after {} ms ({})",
            r.flow_id,
            waited_ms,
            r.reason
        ),
    }
}

async fn flow_result(
    rpc: &mut kh_ledger_node::RpcClient,
    flow: proto::run_flow_request::Flow,
    no_wait: bool,
) -> anyhow::Result<serde_json::Value> {
    let request = proto::RunFlowRequest {
        flow: Some(flow),
        timeout_ms: FLOW_TIMEOUT_MS,
    };
    if no_wait {
        let r = rpc
            .start_flow(request)
            .await
            .map_err(status_error)?
            .into_inner();
        return Ok(flow_json(&r));
    }
    let r = rpc
        .run_flow(request)
        .await
        .map_err(status_error)?
        .into_inner();
    finished(&r, FLOW_TIMEOUT_MS)
}
