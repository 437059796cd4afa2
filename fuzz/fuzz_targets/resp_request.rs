//! RESP: requests (as a server reads them) and replies (as a client reads them).
#![no_main]
use libfuzzer_sys::fuzz_target;
use raftkv_kvservice::resp::{Limits, parse_request, parse_value};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bulk_bytes: 1 << 16,
        max_array_len: 1 << 10,
        max_inline_bytes: 1 << 12,
        max_depth: 16,
    };
    let mut at = 0;
    while at < data.len() {
        match parse_request(&data[at..], &limits) {
            Ok(Some((_, used))) if used > 0 => at += used,
            _ => break,
        }
    }
    let _ = parse_value(data, &limits);
});
