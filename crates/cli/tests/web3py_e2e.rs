//! Acceptance: web3.py (a client kakehashi did not write) against a running
//! `kakehashi devnet evm --instant` process: its POA middleware reads the QBFT blocks, and its
//! polling filter API (`w3.eth.filter('latest')`, log filters by address and topics, contract
//! event filters, `get_new_entries`, `get_all_entries`, `uninstall_filter`) follows a deployed
//! ERC-721's events. The Python side is `contracts/e2e/web3_filters.py`.
//!
//! Needs web3.py: scripts/prereqs (run by scripts/test and .ci/run) installs the pinned
//! packages of scripts/python-requirements.txt into `.venv-kh/`; `KH_PYTHON` names another
//! interpreter that has them. Without web3.py the test is skipped with a message under a plain
//! `cargo test`, and fails under `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter with web3.py 7, or why there is none.
fn python_with_web3(repo: &Path) -> Result<PathBuf, String> {
    let python = match std::env::var_os("KH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => repo.join(".venv-kh/bin/python"),
    };
    let out = Command::new(&python)
        .args(["-c", "import web3, sys; sys.stdout.write(web3.__version__)"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        return Err(format!(
            "{} cannot import web3: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !version.starts_with("7.") {
        return Err(format!(
            "{} has web3 {version}; the test is written for web3.py 7",
            python.display()
        ));
    }
    Ok(python)
}

#[test]
fn web3py_filters_follow_blocks_and_contract_events_on_the_devnet() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = match python_with_web3(&repo) {
        Ok(p) => p,
        Err(why) => {
            let install = "run scripts/prereqs (it creates .venv-kh/ with the pinned web3.py), \
                           or set KH_PYTHON to a Python with web3.py 7";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but web3.py is not available ({why}): {install}"
            );
            eprintln!("skipping the web3.py end-to-end test: {why}; {install}");
            return;
        }
    };
    let devnet = common::Devnet::start();
    let out = Command::new(&python)
        .arg(repo.join("contracts/e2e/web3_filters.py"))
        .env("KH_RPC_URL", &devnet.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("web3.py filters: ok"),
        "web3_filters.py failed:\n{stdout}\n{}\n--- devnet log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        devnet.log()
    );
}
