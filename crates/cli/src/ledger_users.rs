//! `kakehashi ledger --network DIR --node NAME users add|list`: a node's RPC users and their
//! permissions (read, flows, admin), kept in DIR/nodes/<Org>/rpc-users.json; `add` issues the
//! user's client certificate from the network root (DIR/root.pem + DIR/root.key).

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use kh_ledger::PartyName;
use kh_ledger_node::{NetworkCa, NetworkDirectory, Permission, USERS_FILE, add_user, read_users};
use serde_json::json;

use crate::output::{UsageError, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Add an RPC user: issues its certificate (rpc-NAME.pem/.key in the node's directory).
    /// A running node admits it at once.
    Add {
        /// The user's name (letters, digits, `-`, `_`, `.`).
        #[arg(long)]
        name: String,
        /// read (queries), flows (also start flows, create accounts) or admin (also kill
        /// flows, archive).
        #[arg(long)]
        permissions: String,
    },
    /// List the node's RPC users.
    List,
}

pub(crate) fn run(
    network: &Path,
    node: &PartyName,
    command: &UsersCommand,
    json_out: bool,
) -> anyhow::Result<()> {
    let org = node.organisation();
    let dir = NetworkDirectory::node_dir(network, org);
    match command {
        UsersCommand::Add { name, permissions } => {
            let permission: Permission = permissions.parse().map_err(UsageError)?;
            let read = |file: &str| {
                let p = network.join(file);
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
            };
            let ca = NetworkCa::load(&read("root.pem")?, &read("root.key")?)?;
            let (user, _) = add_user(&ca, &dir, org, name, permission)
                .map_err(|e| UsageError(e.to_string()))?;
            let value = json!({
                "node": node.to_string(),
                "name": user.name,
                "permission": user.permission.to_string(),
                "cert_sha256": user.cert_sha256,
                "certificate": dir.join(format!("rpc-{name}.pem")),
                "key": dir.join(format!("rpc-{name}.key")),
            });
            if json_out {
                print_json(&value)
            } else {
                println!(
                    "added RPC user {:?} ({}) to {org}; use --user {}",
                    user.name, user.permission, user.name
                );
                Ok(())
            }
        }
        UsersCommand::List => {
            let users = read_users(&dir.join(USERS_FILE))?;
            if json_out {
                print_json(&json!({ "node": node.to_string(), "users": users }))
            } else {
                for u in users {
                    println!("{}\t{}\t{}", u.name, u.permission, u.cert_sha256);
                }
                Ok(())
            }
        }
    }
}
