//! A crash campaign: a network of five nodes in one process (in-memory transport, each node
//! on its own database) makes payments while a randomly chosen node — payer, payee, notary or
//! Validator — is stopped at a randomly chosen crash point ([`CrashPoint`]) mid-payment, as a
//! `kill -9` would stop it. Its cold standby then opens the same database and the payment must
//! finish. After every run the campaign checks that value is conserved, that no payment was
//! lost or applied twice, that no soft lock is left, and that payer and payee agree; each
//! violation is an anomaly. `kakehashi bench crash` runs it (200+ runs); the test suite runs a
//! smaller sample.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kh_ledger::{
    CrashPoint, DEFAULT_MAX_TRANSACTION_SIZE, Failpoint, FlowStatus, InMemoryNetwork, KeyPair,
    NetworkParameters, Node, NodeConfig, NodeError, NodeRole, Party, PartyName, TxId,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{CoinVault, StablecoinApp, StablecoinFlow};

/// The campaign's nodes, in slot order.
const NAMES: [&str; 5] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=Bank, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
    "O=Validator, L=Tokyo, C=JP",
];
const NOTARY: usize = 0;
const BANK: usize = 1;
const PARTY_A: usize = 2;
const PARTY_B: usize = 3;
const VALIDATOR: usize = 4;

/// Value issued to each of the two paying accounts at the start.
const FUNDS: u64 = 1_000_000;
/// How long a run may take before it counts as stuck (an anomaly).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// Number of payments, each with one crash attempt.
    pub runs: u32,
    /// Seed of the random choices (same seed, same choices).
    pub seed: u64,
    /// One database URL per node (Notary, Bank, PartyA, PartyB, Validator), fresh.
    pub urls: [String; 5],
}

/// The outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CampaignReport {
    /// Runs made.
    pub runs: u32,
    /// Runs in which the chosen failpoint was reached and the node stopped.
    pub failpoints_hit: u32,
    /// Failpoints reached, by `victim/point`.
    pub hits: BTreeMap<String, u32>,
    /// Payments completed.
    pub completed: u32,
    /// Payments that ended failed (with a reason, nothing moved).
    pub failed: u32,
    /// Violations found (must be empty).
    pub anomalies: Vec<String>,
    /// Wall-clock time in milliseconds.
    pub elapsed_ms: u128,
}

/// The campaign could not run (setup failed); anomalies are reported, not errors.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// A node failed to open or act.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] kh_ledger::StoreError),
    /// The setup did not complete.
    #[error("setup: {0}")]
    Setup(String),
}

/// A small deterministic generator (SplitMix64), so a campaign can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Net {
    transport: Arc<InMemoryNetwork>,
    params: NetworkParameters,
    keys: Vec<(PartyName, KeyPair)>,
    urls: [String; 5],
    nodes: Vec<Node>,
}

impl Net {
    async fn open(&self, i: usize, failpoint: Option<Failpoint>) -> Result<Node, NodeError> {
        let (name, key) = &self.keys[i];
        let config = NodeConfig {
            name: name.clone(),
            key: key.clone(),
            database_url: self.urls[i].clone(),
            role: match i {
                NOTARY => NodeRole::Notary,
                VALIDATOR => NodeRole::Validator,
                _ => NodeRole::Regular,
            },
            network: self.params.clone(),
            apps: vec![StablecoinApp::arc()],
            flow_timeout: kh_ledger::DEFAULT_FLOW_TIMEOUT,
            failpoint,
        };
        let node = Node::open(config, self.transport.clone()).await?;
        self.transport.register(name.clone(), node.receiver());
        Ok(node)
    }

    /// Replaces node `i` by a fresh process on its database (with `failpoint`).
    async fn restart(&mut self, i: usize, failpoint: Option<Failpoint>) -> Result<(), NodeError> {
        self.nodes[i].shutdown();
        self.transport.unregister(&self.keys[i].0);
        let node = self.open(i, failpoint).await?;
        self.nodes[i] = node;
        Ok(())
    }
}

/// Which crash points can stop `victim` during a payment, and how many passages it makes of
/// each at most (a later passage than the node makes is simply not reached).
fn points_for(victim: usize, payer: usize, validator: bool) -> Vec<(CrashPoint, u32)> {
    match victim {
        v if v == payer => vec![(CrashPoint::Checkpoint, 4), (CrashPoint::Sent, 5)],
        NOTARY => vec![(CrashPoint::NotaryCommit, 1), (CrashPoint::Sent, 1)],
        VALIDATOR if validator => vec![
            (CrashPoint::Cosigned, 1),
            (CrashPoint::Recorded, 1),
            (CrashPoint::Sent, 2),
        ],
        _ => vec![(CrashPoint::Recorded, 1), (CrashPoint::Sent, 2)],
    }
}

/// Runs the campaign.
pub async fn crash_campaign(config: CampaignConfig) -> Result<CampaignReport, CampaignError> {
    let started = Instant::now();
    let mut rng = Rng(config.seed);
    let keys: Vec<(PartyName, KeyPair)> = NAMES
        .iter()
        .map(|n| {
            n.parse()
                .map(|name| (name, KeyPair::generate()))
                .map_err(|e: kh_ledger::ParseNameError| CampaignError::Setup(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let parties: Vec<Party> = keys
        .iter()
        .map(|(n, k)| Party {
            name: n.clone(),
            owning_key: k.public(),
        })
        .collect();
    let params = NetworkParameters {
        notary: parties[NOTARY].clone(),
        nodes: parties,
        max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
        notary_validating: false,
        validators: vec![keys[VALIDATOR].0.clone()],
    };
    let mut net = Net {
        transport: InMemoryNetwork::new(),
        params,
        keys,
        urls: config.urls.clone(),
        nodes: vec![],
    };
    for i in 0..NAMES.len() {
        let node = net.open(i, None).await?;
        net.nodes.push(node);
    }
    // One account on each paying node, funded by the bank.
    let alice = net.nodes[PARTY_A].create_account("alice").await?;
    let bob = net.nodes[PARTY_B].create_account("bob").await?;
    for (slot, account) in [(PARTY_A, &alice), (PARTY_B, &bob)] {
        let flow = net.nodes[BANK]
            .start_flow(StablecoinFlow::Issue {
                amount: FUNDS,
                currency: "JPY".into(),
                to_node: net.keys[slot].0.clone(),
                to_account: account.id,
            })
            .await?;
        match net.nodes[BANK].wait_flow(flow, RUN_LIMIT).await? {
            FlowStatus::Completed { .. } => {}
            other => return Err(CampaignError::Setup(format!("issuance: {other:?}"))),
        }
    }
    let mut expected = BTreeMap::from([(PARTY_A, FUNDS), (PARTY_B, FUNDS)]);
    let mut report = CampaignReport::default();
    for run in 0..config.runs {
        report.runs += 1;
        let (payer, payee) = if run % 2 == 0 {
            (PARTY_A, PARTY_B)
        } else {
            (PARTY_B, PARTY_A)
        };
        let (from, to) = if payer == PARTY_A {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        let validator = rng.below(2) == 0;
        let mut victims = vec![payer, payee, NOTARY];
        if validator {
            victims.push(VALIDATOR);
        }
        let victim = victims[rng.below(victims.len() as u64) as usize];
        let points = points_for(victim, payer, validator);
        let (point, max_hit) = points[rng.below(points.len() as u64) as usize];
        let hit = 1 + rng.below(u64::from(max_hit)) as u32;
        let label = format!("{}#{hit}", point_label(&net, victim, point));
        net.restart(victim, Some(Failpoint::At { point, hit }))
            .await?;
        let amount = 1 + rng.below(50);
        let flow = Uuid::new_v4();
        let started = net.nodes[payer]
            .start_flow_with_id(
                flow,
                StablecoinFlow::Pay {
                    amount,
                    from: from.id,
                    to_node: net.keys[payee].0.clone(),
                    to_account: to.id,
                    validator: validator.then(|| net.keys[VALIDATOR].0.clone()),
                },
            )
            .await;
        // A payer stopped while starting the flow (its first checkpoint) leaves it to the
        // standby, like a client whose connection dropped.
        if let Err(e) = started
            && !(victim == payer && net.nodes[payer].is_stopped())
        {
            return Err(e.into());
        }
        // Until the payment ends or the victim stops; a stopped victim's standby takes over.
        let deadline = Instant::now() + RUN_LIMIT;
        let mut crashed = false;
        let outcome = loop {
            if !crashed && net.nodes[victim].is_stopped() {
                crashed = true;
                report.failpoints_hit += 1;
                *report
                    .hits
                    .entry(point_label(&net, victim, point))
                    .or_default() += 1;
                net.restart(victim, None).await?;
            }
            match net.nodes[payer].flow_status(flow).await {
                Ok(FlowStatus::Running { .. }) | Err(NodeError::Store(_)) => {}
                Ok(done) => break Some(done),
                Err(e) => return Err(e.into()),
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if !crashed {
            // The failpoint was not reached: put the victim back to normal for the next run.
            net.restart(victim, None).await?;
        }
        let anomaly = |what: String| format!("run {run} ({label}, {amount}): {what}");
        match outcome {
            None => {
                report
                    .anomalies
                    .push(anomaly(format!("payment {flow} stuck")));
                continue;
            }
            Some(FlowStatus::Completed { tx_id }) => {
                report.completed += 1;
                *expected.entry(payer).or_default() -= amount;
                *expected.entry(payee).or_default() += amount;
                for problem in agree(&net, payer, payee, tx_id).await? {
                    report.anomalies.push(anomaly(problem));
                }
            }
            Some(FlowStatus::Failed { .. }) => report.failed += 1,
            Some(FlowStatus::Running { .. }) => unreachable!("loop ends on a final status"),
        }
        for problem in check_balances(&net, &alice, &bob, &expected).await? {
            report.anomalies.push(anomaly(problem));
        }
    }
    for n in &net.nodes {
        n.shutdown();
    }
    report.elapsed_ms = started.elapsed().as_millis();
    Ok(report)
}

fn point_label(net: &Net, victim: usize, point: CrashPoint) -> String {
    format!("{}/{}", net.keys[victim].0.organisation(), point.name())
}

/// Payer and payee both hold the payment's transaction (the payer completes only once the
/// payee confirmed), and neither keeps a soft lock.
async fn agree(
    net: &Net,
    payer: usize,
    payee: usize,
    tx_id: TxId,
) -> Result<Vec<String>, CampaignError> {
    let mut problems = vec![];
    let a = net.nodes[payer].vault().transaction(&tx_id).await?;
    let b = net.nodes[payee].vault().transaction(&tx_id).await?;
    match (&a, &b) {
        (Some(x), Some(y)) if x == y => {}
        (Some(_), Some(_)) => problems.push(format!("payer and payee hold different {tx_id}")),
        _ => problems.push(format!(
            "{tx_id} completed but payer has it: {}, payee has it: {}",
            a.is_some(),
            b.is_some()
        )),
    }
    for slot in [payer, payee] {
        let locked = net.nodes[slot].vault().locked_states().await?;
        if locked != 0 {
            problems.push(format!(
                "{} keeps {locked} soft-locked states",
                net.keys[slot].0.organisation()
            ));
        }
    }
    Ok(problems)
}

/// Each account holds exactly what the completed payments say, and together all that was
/// issued: nothing lost, nothing applied twice.
async fn check_balances(
    net: &Net,
    alice: &kh_ledger::Account,
    bob: &kh_ledger::Account,
    expected: &BTreeMap<usize, u64>,
) -> Result<Vec<String>, CampaignError> {
    let mut problems = vec![];
    let mut total = 0;
    for (slot, account) in [(PARTY_A, alice), (PARTY_B, bob)] {
        let have = net.nodes[slot].vault().balance(&account.public_key).await?;
        total += have;
        let want = expected.get(&slot).copied().unwrap_or(0);
        if have != want {
            problems.push(format!(
                "{} holds {have}, the completed payments say {want}",
                net.keys[slot].0.organisation()
            ));
        }
    }
    if total != 2 * FUNDS {
        problems.push(format!(
            "value not conserved: {total} held of {} issued",
            2 * FUNDS
        ));
    }
    Ok(problems)
}

/// `n` fresh PostgreSQL databases on the server of `url` (created with `CREATE DATABASE`),
/// as URLs.
pub async fn postgres_databases(url: &str, n: usize) -> Result<Vec<String>, CampaignError> {
    use sqlx::Executor as _;
    let admin = kh_ledger::Store::connect(url).await?;
    let base = url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .ok_or_else(|| CampaignError::Setup(format!("{url} names no database")))?;
    let mut urls = Vec::with_capacity(n);
    for _ in 0..n {
        let name = format!("kh_crash_{}", Uuid::new_v4().simple());
        admin
            .pool()
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .map_err(|e| CampaignError::Setup(format!("creating database {name}: {e}")))?;
        urls.push(format!("{base}/{name}"));
    }
    admin.pool().close().await;
    Ok(urls)
}
