//! A sample of the crash campaign (`kakehashi bench crash` runs 200+): payments while a random
//! node stops at a random crash point and its standby takes over, on SQLite and (when
//! KH_TEST_POSTGRES_URL is set, as scripts/test does; required under CI=true) PostgreSQL. No
//! anomaly is allowed: value conserved, nothing lost or applied twice, no lock left, payer and
//! payee agreeing.
#![allow(clippy::unwrap_used)]

mod common;

use kh_app_stablecoin::campaign::{CampaignConfig, crash_campaign};

const RUNS: u32 = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_survive_a_crash_at_any_point() {
    for (backend, urls) in common::database_urls(5).await {
        let urls: [String; 5] = urls.try_into().unwrap();
        let report = crash_campaign(CampaignConfig {
            runs: RUNS,
            seed: 0x6b68_6372_6173_6821,
            urls,
        })
        .await
        .unwrap();
        eprintln!("{backend}: {}", serde_json::to_string(&report).unwrap());
        assert!(
            report.anomalies.is_empty(),
            "{backend}: {:?}",
            report.anomalies
        );
        assert_eq!(report.runs, RUNS);
        assert!(
            report.failpoints_hit >= RUNS / 2,
            "{backend}: only {} of {RUNS} runs crashed a node",
            report.failpoints_hit
        );
        assert!(report.completed >= RUNS / 2, "{backend}: {report:?}");
    }
}
