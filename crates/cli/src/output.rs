//! One output convention for every subcommand: a JSON result on stdout, a one-line reason
//! (with its source chain) on stderr, and the documented exit codes.

use std::fmt;
use std::process::ExitCode;

use serde::Serialize;

/// Exit code for a failed operation.
const EXIT_FAILED: u8 = 1;
/// Exit code for a usage or configuration error.
const EXIT_USAGE: u8 = 2;

/// Marks an error as a usage/config error (exit code 2) rather than a failed operation.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Prints `value` as exactly one JSON object on stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

/// Turns a subcommand's result into the process exit code, printing a one-line reason with
/// its source chain on stderr on failure.
pub(crate) fn conclude(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let reason = err
                .chain()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("error: {reason}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}
