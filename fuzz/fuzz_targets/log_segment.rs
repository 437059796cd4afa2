//! Log records: payload decoding behind a valid checksum, and whole-segment recovery.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let _ = raftkv_storage::fuzzing::log_payload(kind % 5, rest);
    let _ = raftkv_storage::fuzzing::log_segment(rest);
});
