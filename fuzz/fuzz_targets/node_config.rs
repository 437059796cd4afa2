//! Configuration files: a member's TOML (as `raftkv server --config` reads it) and the
//! storage table.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = toml::from_str::<raftkv::server::NodeFile>(text) {
        // Host names would be resolved through DNS: keep to literal addresses.
        let literal = |a: &str| a.parse::<std::net::SocketAddr>().is_ok();
        let peers_literal = file
            .peers
            .as_ref()
            .is_none_or(|p| p.values().all(|a| literal(a)));
        if peers_literal && file.listen.as_deref().is_none_or(literal) {
            let _ = raftkv::server::NodeConfig::from_file(file);
        }
    }
    let _ = raftkv_storage::fuzzing::storage_config(text);
});
