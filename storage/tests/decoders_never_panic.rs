//! The proptest twins of the fuzz targets in `fuzz/` (which run the same entry points,
//! `raftkv_storage::fuzzing`, for as long as one likes): random bytes through the log
//! record decoder, log recovery, the snapshot file decoder and the config parser return
//! a value or a typed error, never a panic. A few seconds in CI.

use proptest::prelude::*;
use raftkv_storage::fuzzing;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn log_payloads_decode_or_fail(kind in 0u8..6, payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = fuzzing::log_payload(kind, &payload);
    }

    #[test]
    fn log_segments_recover_or_fail(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = fuzzing::log_segment(&input);
    }

    #[test]
    fn well_framed_records_with_random_payloads_recover_or_fail(
        records in prop::collection::vec((0u8..4, prop::collection::vec(any::<u8>(), 0..120)), 0..12)
    ) {
        let mut input = Vec::new();
        for (kind, payload) in records {
            input.push(kind);
            input.extend_from_slice(&(payload.len() as u16).to_le_bytes());
            input.extend_from_slice(&payload);
        }
        let _ = fuzzing::log_segment(&input);
    }

    #[test]
    fn random_snapshot_files_are_rejected_or_read(input in prop::collection::vec(any::<u8>(), 0..1024)) {
        prop_assert!(fuzzing::snapshot_raw(&input).is_err(), "random bytes are not a snapshot");
    }

    #[test]
    fn damaged_snapshots_are_rejected_or_read_in_full(
        payload in prop::collection::vec(any::<u8>(), 0..20_000),
        edits in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        match fuzzing::snapshot_damaged(&payload, &edits) {
            Ok(n) => prop_assert_eq!(n, payload.len() as u64),
            Err(_) => prop_assert!(!edits.is_empty(), "an undamaged snapshot reads"),
        }
    }

    #[test]
    fn config_text_parses_or_fails(text in "[a-z_=\"0-9 \\n\\[\\].-]{0,200}") {
        let _ = fuzzing::storage_config(&text);
    }
}
