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

/// How the configurable apps are configured (a node's `node.toml`).
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// The attestation root certificate (DER) the IBC host's LCP clients trust; without it the
    /// host refuses to create LCP clients. Every operator of the host must have the same.
    pub lcp_attestation_root: Option<Vec<u8>>,
}

/// The apps called `names`, with default options.
pub fn apps_by_name<S: AsRef<str>>(names: &[S]) -> Result<Vec<Arc<dyn App>>, String> {
    apps_with(names, &AppOptions::default())
}

fn ibc_host(options: &AppOptions) -> Arc<kh_ibc_ledger::IbcHostApp> {
    match &options.lcp_attestation_root {
        Some(root) => Arc::new(kh_ibc_ledger::IbcHostApp::with_lcp_attestation_root(
            kh_ibc_ledger::DEFAULT_CHAIN_ID,
            root.clone(),
        )),
        None => kh_ibc_ledger::IbcHostApp::arc(),
    }
}

/// The apps called `names`; the first unknown name is the error. The ping app binds to the
/// IBC host's `ping` port, so it needs `ibc-host` in the same list.
pub fn apps_with<S: AsRef<str>>(
    names: &[S],
    options: &AppOptions,
) -> Result<Vec<Arc<dyn App>>, String> {
    let mut host: Option<Arc<kh_ibc_ledger::IbcHostApp>> = None;
    let mut out: Vec<Arc<dyn App>> = Vec::with_capacity(names.len());
    let wants_ping = names.iter().any(|n| n.as_ref() == kh_ibc_ledger::PING_APP);
    for n in names {
        let n = n.as_ref();
        if n == kh_ibc_ledger::APP_NAME {
            let h = ibc_host(options);
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
