//! Test helpers shared by the ledger crates' integration tests: one fresh database per backend
//! under test (SQLite always, PostgreSQL when `KH_TEST_POSTGRES_URL` is set).
#![allow(clippy::unwrap_used)] // test support: a failed setup should stop the test

pub mod host_chain;
pub mod net;

use kh_ledger::{KeyPair, Store};

/// The PostgreSQL server to test on: `KH_TEST_POSTGRES_URL` (scripts/test starts a throw-away
/// server and sets it). Without it the PostgreSQL variants are skipped — except under CI
/// (`CI=true`), where a missing server fails the test instead of passing it unseen.
pub fn postgres_url() -> Option<String> {
    match std::env::var("KH_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CI=true but KH_TEST_POSTGRES_URL is not set: the PostgreSQL variants must run in CI"
        ),
        Err(_) => None,
    }
}

/// A random database / file name.
pub fn rand_name() -> String {
    format!("kh_{}", &hex::encode(KeyPair::generate().public().0)[..16])
}

/// A fresh SQLite store, plus a fresh PostgreSQL database when `KH_TEST_POSTGRES_URL` is set
/// (scripts/test starts a throw-away server and sets it).
pub async fn stores() -> Vec<(&'static str, Store)> {
    let dir = std::env::temp_dir().join("kh-ledger-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!(
        "sqlite:{}",
        dir.join(format!("{}.db", rand_name())).display()
    );
    let mut out = vec![("sqlite", Store::connect(&sqlite).await.unwrap())];
    if let Some(url) = postgres_url() {
        use sqlx::Executor;
        let admin = Store::connect(&url).await.unwrap();
        let name = rand_name();
        admin
            .pool()
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let base = url.rsplit_once('/').unwrap().0;
        out.push((
            "postgres",
            Store::connect(&format!("{base}/{name}")).await.unwrap(),
        ));
    }
    out
}

/// `n` fresh database URLs per backend under test (SQLite files; PostgreSQL databases when
/// `KH_TEST_POSTGRES_URL` is set).
pub async fn database_urls(n: usize) -> Vec<(&'static str, Vec<String>)> {
    let dir = std::env::temp_dir().join("kh-ledger-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = (0..n)
        .map(|_| {
            format!(
                "sqlite:{}",
                dir.join(format!("{}.db", rand_name())).display()
            )
        })
        .collect();
    let mut out = vec![("sqlite", sqlite)];
    if let Some(url) = postgres_url() {
        use sqlx::Executor;
        let admin = Store::connect(&url).await.unwrap();
        let base = url.rsplit_once('/').unwrap().0.to_string();
        let mut urls = vec![];
        for _ in 0..n {
            let name = rand_name();
            admin
                .pool()
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            urls.push(format!("{base}/{name}"));
        }
        out.push(("postgres", urls));
    }
    out
}
