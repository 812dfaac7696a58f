//! QBFT extraData decoding never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(extra) = kh_qbft::ExtraData::decode(data) {
        assert_eq!(extra.encode(), data);
        let _ = kh_qbft::ExtraData::decode(&extra.encode_for_hash());
    }
});
