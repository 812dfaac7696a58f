//! QBFT header decoding and seal verification never panic on arbitrary bytes, and whatever
//! decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = kh_qbft::RawHeader::decode(data) {
        assert_eq!(raw.encode(), data);
        let _ = raw.extra_data_bytes();
    }
    if let Ok(header) = kh_qbft::Header::decode(data) {
        assert_eq!(header.encode(), data);
        let _ = header.block_hash();
        let _ = header.check_bft_constants();
        let validators = header.extra_data().validators.clone();
        let _ = kh_qbft::verify_commit_seals(&header, &validators);
        let _ = kh_qbft::verify_skip(&header, &validators);
    }
});
