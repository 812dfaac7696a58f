//! Leases: exactly one holder at a time; a standby takes over when the holder dies (file: the
//! kernel drops the lock with the process) or stops renewing (PostgreSQL: after the ttl, by the
//! database's clock), with a higher epoch; the old holder then knows it lost the lease.
//!
//! The PostgreSQL case runs when `KH_TEST_POSTGRES_URL` is set (scripts/test sets it) and fails
//! without it under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kh_relayer::config::LeaseConfig;
use kh_relayer::lease::Lease;

#[tokio::test]
async fn a_file_lease_has_one_holder_and_passes_on_when_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LeaseConfig::File {
        path: dir.path().join("relayer.lock"),
        poll: Duration::from_millis(50),
    };
    let mut a = Lease::open(&config, "path-1", "relayer-a").await.unwrap();
    let mut b = Lease::open(&config, "path-1", "relayer-b").await.unwrap();
    assert_eq!(a.try_acquire().await.unwrap(), Some(1));
    assert_eq!(b.try_acquire().await.unwrap(), None);
    assert!(a.is_valid() && !b.is_valid());
    // Renewing a held file lease keeps the epoch.
    assert_eq!(a.try_acquire().await.unwrap(), Some(1));

    // The holder goes away (as a process, its exit closes the file and drops the lock).
    drop(a);
    assert_eq!(b.try_acquire().await.unwrap(), Some(2));
    assert!(b.is_valid());
    let text = std::fs::read_to_string(dir.path().join("relayer.lock")).unwrap();
    assert_eq!(text.trim(), "2 relayer-b");

    // A clean release lets the next one in at once.
    b.release().await.unwrap();
    let mut c = Lease::open(&config, "path-1", "relayer-c").await.unwrap();
    assert_eq!(c.try_acquire().await.unwrap(), Some(3));
}

#[tokio::test]
async fn a_postgres_lease_expires_by_the_database_clock() {
    let Ok(url) = std::env::var("KH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "KH_TEST_POSTGRES_URL is required under CI"
        );
        eprintln!("skipped: KH_TEST_POSTGRES_URL is not set");
        return;
    };
    let name = format!("lease-test-{}", std::process::id());
    let config = LeaseConfig::Postgres {
        url,
        ttl: Duration::from_secs(1),
    };
    let mut a = Lease::open(&config, &name, "relayer-a").await.unwrap();
    let mut b = Lease::open(&config, &name, "relayer-b").await.unwrap();
    let epoch = a.try_acquire().await.unwrap().unwrap();
    assert_eq!(b.try_acquire().await.unwrap(), None);
    // Renewals keep it: b stays out while a renews every ttl/3.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(a.try_acquire().await.unwrap(), Some(epoch));
        assert_eq!(b.try_acquire().await.unwrap(), None);
        tokio::time::sleep(a.interval()).await;
    }
    // a stops renewing (crashed or stalled): within ttl it stops counting itself holder...
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!a.is_valid());
    // ...and b takes over with a higher epoch; a's late renewal is refused.
    let taken = b.try_acquire().await.unwrap().unwrap();
    assert_eq!(taken, epoch + 1);
    assert_eq!(a.try_acquire().await.unwrap(), None);
    assert!(b.is_valid() && !a.is_valid());
    b.release().await.unwrap();
    assert_eq!(
        a.try_acquire().await.unwrap(),
        Some(taken + 1),
        "a released lease passes on at once, epochs still increasing"
    );
    a.release().await.unwrap();
}
