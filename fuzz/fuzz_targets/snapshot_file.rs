//! Snapshot files: raw bytes, and valid snapshots with damage applied.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = raftkv_storage::fuzzing::snapshot_raw(rest);
    } else {
        let split = rest.len().min(usize::from(mode) * 8);
        let (edits, payload) = rest.split_at(split);
        if let Ok(n) = raftkv_storage::fuzzing::snapshot_damaged(payload, edits) {
            assert_eq!(n, payload.len() as u64);
        }
    }
});
