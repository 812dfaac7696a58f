//! The apps a node process can run, by the name `node.toml` lists them under.

use std::sync::Arc;

use kh_ledger::App;

/// Every app this build of the node knows, by name.
pub const KNOWN_APPS: &[&str] = &[
    kh_app_stablecoin::APP_NAME,
    kh_app_record::APP_NAME,
    kh_ibc_ledger::APP_NAME,
    kh_ibc_ledger::PING_APP,
];

/// The apps a node runs when its configuration names none.
pub const DEFAULT_APPS: &[&str] = &[kh_app_stablecoin::APP_NAME];

/// The app called `name`, if this build has it.
pub fn app_by_name(name: &str) -> Option<Arc<dyn App>> {
    match name {
        kh_app_stablecoin::APP_NAME => Some(kh_app_stablecoin::StablecoinApp::arc()),
        kh_app_record::APP_NAME => Some(kh_app_record::RecordApp::arc()),
        kh_ibc_ledger::APP_NAME => Some(kh_ibc_ledger::IbcHostApp::arc()),
        _ => None,
    }
}

/// The apps called `names`; the first unknown name is the error. The ping app binds to the
/// IBC host's `ping` port, so it needs `ibc-host` in the same list.
pub fn apps_by_name<S: AsRef<str>>(names: &[S]) -> Result<Vec<Arc<dyn App>>, String> {
    let mut host: Option<Arc<kh_ibc_ledger::IbcHostApp>> = None;
    let mut out: Vec<Arc<dyn App>> = Vec::with_capacity(names.len());
    let wants_ping = names.iter().any(|n| n.as_ref() == kh_ibc_ledger::PING_APP);
    for n in names {
        let n = n.as_ref();
        if n == kh_ibc_ledger::APP_NAME && wants_ping {
            let h = kh_ibc_ledger::IbcHostApp::arc();
            host = Some(h.clone());
            out.push(h);
            continue;
        }
        if n == kh_ibc_ledger::PING_APP {
            continue;
        }
        out.push(app_by_name(n).ok_or_else(|| {
            format!(
                "unknown app {n:?} (this node knows: {})",
                KNOWN_APPS.join(", ")
            )
        })?);
    }
    if wants_ping {
        let host = host.ok_or_else(|| {
            format!(
                "app {:?} needs app {:?}",
                kh_ibc_ledger::PING_APP,
                kh_ibc_ledger::APP_NAME
            )
        })?;
        out.push(kh_ibc_ledger::PingApp::new(&host));
    }
    Ok(out)
}
