//! The shared ledger test helpers (`kh-test-support`): one fresh database per backend under test.
#![allow(unused_imports, unreachable_pub)]

pub use kh_test_support::{database_urls, postgres_url, rand_name, stores};
