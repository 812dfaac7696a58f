//! Small helpers shared by the crate: the clock, and the hex-of-BCS text form rows are stored in.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// BCS bytes of a value of this crate's types (no floats, no unbounded maps: it cannot fail).
pub(crate) fn bcs_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    bcs::to_bytes(value).expect("BCS encodes ledger values")
}

/// A value as hex of its BCS bytes, the text form rows hold.
pub(crate) fn to_hex_bcs<T: Serialize>(value: &T) -> String {
    hex::encode(bcs_bytes(value))
}

/// Reads a value stored by [`to_hex_bcs`]; a bad row is reported as corrupt in `table`.
pub(crate) fn from_hex_bcs<T: DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { table, reason };
    let bytes = hex::decode(text).map_err(|e| corrupt(e.to_string()))?;
    bcs::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))
}
