//! `kakehashi bench crash`: the payments' crash campaign ([`kh_app_stablecoin::campaign`]) —
//! a random node stopped at a random crash point mid-payment, its standby finishing — printed
//! as one JSON object (runs, failpoints hit by node and point, completed and failed payments,
//! anomalies, which must be none).

use anyhow::Context;
use kh_app_stablecoin::campaign::{CampaignConfig, crash_campaign, postgres_databases};

use crate::output::print_json;

/// Arguments of `bench crash`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Payments to make, each with one crash attempt.
    #[arg(long, default_value_t = 200)]
    runs: u32,
    /// Seed of the random choices (a campaign replays by its seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run the nodes on PostgreSQL: a server URL whose user may create databases (five fresh
    /// ones are created). Default: SQLite files in a temporary directory.
    #[arg(long)]
    postgres: Option<String>,
}

/// Runs `bench crash`; exits non-zero when an anomaly was found.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let urls: Vec<String> = match &args.postgres {
        Some(url) => postgres_databases(url, 5).await?,
        None => (0..5)
            .map(|i| {
                format!(
                    "sqlite:{}",
                    dir.path().join(format!("node{i}.db")).display()
                )
            })
            .collect(),
    };
    let urls: [String; 5] = urls
        .try_into()
        .map_err(|_| anyhow::anyhow!("five database URLs"))?;
    let report = crash_campaign(CampaignConfig {
        runs: args.runs,
        seed: args.seed,
        urls,
    })
    .await?;
    let backend = if args.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let mut value = serde_json::to_value(&report)?;
    value["backend"] = serde_json::Value::from(backend);
    print_json(&value)?;
    if !report.anomalies.is_empty() {
        anyhow::bail!("{} anomalies", report.anomalies.len());
    }
    Ok(())
}
