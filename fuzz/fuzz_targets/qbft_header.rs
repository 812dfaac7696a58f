//! QBFT header decoding and seal verification never panic on arbitrary bytes, and whatever
//! decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = kh_qbft::Header::decode(data) {
        assert_eq!(header.encode(), data);
        let _ = header.block_hash();
        let validators = header.extra_data().validators.clone();
        let _ = kh_qbft::verify_commit_seals(&header, &validators);
        let _ = kh_qbft::verify_skip(&header, &validators);
    }
});
