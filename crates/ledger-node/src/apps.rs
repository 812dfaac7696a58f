//! The apps a node process can run, by the name `node.toml` lists them under.

use std::sync::Arc;

use kh_ledger::App;

/// Every app this build of the node knows, by name.
pub const KNOWN_APPS: &[&str] = &[
    kh_app_stablecoin::APP_NAME,
    kh_app_record::APP_NAME,
    kh_ibc_ledger::APP_NAME,
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

/// The apps called `names`; the first unknown name is the error.
pub fn apps_by_name<S: AsRef<str>>(names: &[S]) -> Result<Vec<Arc<dyn App>>, String> {
    names
        .iter()
        .map(|n| {
            app_by_name(n.as_ref()).ok_or_else(|| {
                format!(
                    "unknown app {:?} (this node knows: {})",
                    n.as_ref(),
                    KNOWN_APPS.join(", ")
                )
            })
        })
        .collect()
}
