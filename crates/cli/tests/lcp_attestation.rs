//! `kakehashi lcp attestation verify` on the real Intel reports of `vectors/lcp` (valid and
//! invalid), and `simulate` followed by `verify` with the simulation root it created.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn vector(rel: &str) -> String {
    format!("{}/../../vectors/lcp/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn kakehashi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

const ADVISORIES: &str = "INTEL-SA-00219,INTEL-SA-00289,INTEL-SA-00334,INTEL-SA-00477,\
INTEL-SA-00614,INTEL-SA-00615,INTEL-SA-00617,INTEL-SA-00828";
const MRENCLAVE: &str = "0xd5097b7629c003c1ff46581a46401d43f441dab919340172896ce9d50a35f0ad";

fn verify_intel_at(file: &str, at: &str, extra: &[&str]) -> Output {
    let avr = vector(file);
    let root = vector("certs/Intel_SGX_Attestation_RootCA.der");
    let mut args = vec![
        "lcp",
        "attestation",
        "verify",
        "--avr",
        &avr,
        "--root-cert",
        &root,
        "--mrenclave",
        MRENCLAVE,
        "--allowed-quote-statuses",
        "GROUP_OUT_OF_DATE",
        "--allowed-advisory-ids",
        ADVISORIES,
        "--at",
        at,
    ];
    args.extend_from_slice(extra);
    kakehashi(&args)
}

/// At the block time lcp-solidity's ReportTest warps to.
fn verify_intel(file: &str, extra: &[&str]) -> Output {
    verify_intel_at(file, "1692703263", extra)
}

#[test]
fn verifies_a_real_intel_report() {
    let out = verify_intel("reports/valid/002-avr", &["--debug"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["enclave_key"],
        "0xc9f79d5de52dbe84120055ff286642c5c328466e"
    );
    assert_eq!(v["operator"], "0xcb96f8d6c2d543102184d679d7829b39434e4eec");
    assert_eq!(v["mrenclave"], MRENCLAVE);
    assert_eq!(v["quote_status"], "GROUP_OUT_OF_DATE");
    assert_eq!(v["advisory_ids"].as_array().unwrap().len(), 8);
    assert_eq!(v["attestation_time"], 1_718_465_201);

    // valid/001 has no operator.
    let out = verify_intel("reports/valid/001-avr", &["--debug"]);
    assert!(out.status.success());
    assert_eq!(json(&out)["operator"], serde_json::Value::Null);
}

#[test]
fn refuses_invalid_reports_with_the_reason() {
    // Wrong signature.
    let out = verify_intel("reports/invalid/001-avr", &["--debug"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("report signature does not verify"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid"));

    // A debug enclave without --debug.
    let out = verify_intel("reports/valid/001-avr", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json(&out)["reason"]
            .as_str()
            .unwrap()
            .contains("debug enclave")
    );

    // The signing certificate has expired at --at.
    let out = verify_intel_at("reports/valid/001-avr", "1795167419", &["--debug"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json(&out)["reason"]
            .as_str()
            .unwrap()
            .contains("signing certificate is not valid")
    );

    // The key has expired (7 days after attestation).
    let out = verify_intel_at(
        "reports/valid/001-avr",
        "1719068045",
        &["--debug", "--key-expiration", "604800"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(json(&out)["reason"].as_str().unwrap().contains("expired"));
    let out = verify_intel_at(
        "reports/valid/001-avr",
        "1719068044",
        &["--debug", "--key-expiration", "604800"],
    );
    assert!(out.status.success());
    assert_eq!(json(&out)["expires_at"], 1_719_068_045);

    // Another MRENCLAVE pin.
    let avr = vector("reports/valid/001-avr");
    let root = vector("certs/Intel_SGX_Attestation_RootCA.der");
    let out = kakehashi(&[
        "lcp",
        "attestation",
        "verify",
        "--avr",
        &avr,
        "--root-cert",
        &root,
        "--debug",
        "--mrenclave",
        &"00".repeat(32),
        "--allowed-quote-statuses",
        "GROUP_OUT_OF_DATE",
        "--allowed-advisory-ids",
        ADVISORIES,
        "--at",
        "1692703263",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(json(&out)["reason"].as_str().unwrap().contains("MRENCLAVE"));

    // Under the simulation root.
    let sim_root = vector("certs/simulation_rootca.der");
    let out = kakehashi(&[
        "lcp",
        "attestation",
        "verify",
        "--avr",
        &avr,
        "--root-cert",
        &sim_root,
        "--debug",
        "--allowed-quote-statuses",
        "GROUP_OUT_OF_DATE",
        "--allowed-advisory-ids",
        ADVISORIES,
        "--at",
        "1692703263",
    ]);
    assert_eq!(out.status.code(), Some(1));

    // A root that is not a certificate is a usage error.
    let out = kakehashi(&[
        "lcp",
        "attestation",
        "verify",
        "--avr",
        &avr,
        "--root-cert",
        &avr,
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let report = dir.path().join("report.json");
    let (ca_s, report_s) = (ca.to_str().unwrap(), report.to_str().unwrap());
    let mrenclave = format!("0x{}", "5a".repeat(32));
    let simulate = |operator: &[&str]| {
        let mut args = vec![
            "lcp",
            "attestation",
            "simulate",
            "--ca-dir",
            ca_s,
            "--out",
            report_s,
            "--enclave-key",
            "0x836fec0cc99ed0242ed02fbaab648652b2372e41",
            "--mrenclave",
            &mrenclave,
        ];
        args.extend_from_slice(operator);
        kakehashi(&args)
    };
    let out = simulate(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["created_authority"], true);
    let root = ca.join("simulation_root.der");
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "lcp",
            "attestation",
            "verify",
            "--avr",
            report_s,
            "--root-cert",
            root.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        kakehashi(&args)
    };
    let out = verify(&["--mrenclave", &mrenclave]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(
        v["enclave_key"],
        "0x836fec0cc99ed0242ed02fbaab648652b2372e41"
    );
    assert_eq!(v["quote_status"], "OK");
    assert_eq!(v["debug"], false);

    // The second report reuses the authority and binds an operator.
    let out = simulate(&[
        "--operator",
        "0xc1eae5ef781f4ee5867ec6725630e7dc17fa3436",
        "--debug",
    ]);
    assert!(out.status.success());
    assert_eq!(json(&out)["created_authority"], false);
    let out = verify(&["--debug"]);
    assert!(out.status.success());
    assert_eq!(
        json(&out)["operator"],
        "0xc1eae5ef781f4ee5867ec6725630e7dc17fa3436"
    );
    // A debug report is refused without --debug.
    assert_eq!(verify(&[]).status.code(), Some(1));

    // The simulation root does not vouch for Intel's report.
    let out = kakehashi(&[
        "lcp",
        "attestation",
        "verify",
        "--avr",
        &vector("reports/valid/001-avr"),
        "--root-cert",
        root.to_str().unwrap(),
        "--debug",
        "--at",
        "1692703263",
    ]);
    assert_eq!(out.status.code(), Some(1));

    // A partial authority directory is refused rather than overwritten.
    std::fs::remove_file(ca.join("simulation_signing.key")).unwrap();
    assert_eq!(simulate(&[]).status.code(), Some(2));
}
