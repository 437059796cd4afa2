//! The `-LOADING` gate: while its replica loads its state (restores its snapshot, then
//! replays the log it knew to be committed), a server answers the commands that need
//! the data with Redis's `-LOADING` error, as Redis does while it reads its RDB file.
//! Clients treat it as "alive, retry later" (redis-py raises `BusyLoadingError`).
//!
//! The commands that do not touch the data, or that report on the server, still work:
//! so `INFO` shows the progress, and `PING` (which Redis also refuses while loading)
//! tells a liveness probe "alive, not ready".

/// Redis's reply while loading.
pub(crate) const LOADING: &str = "LOADING Redis is loading the dataset in memory";

/// Commands served while loading (the others get [`LOADING`]): the connection's own
/// state, introspection, and the cluster topology.
pub(crate) fn allowed_while_loading(name: &[u8]) -> bool {
    [
        &b"auth"[..],
        b"hello",
        b"quit",
        b"info",
        b"client",
        b"command",
        b"config",
        b"select",
        b"cluster",
        b"readonly",
        b"readwrite",
    ]
    .iter()
    .any(|c| name.eq_ignore_ascii_case(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_commands_and_ping_wait_for_loading() {
        for name in ["GET", "set", "PING", "mget", "DBSIZE", "echo"] {
            assert!(!allowed_while_loading(name.as_bytes()), "{name}");
        }
        for name in ["INFO", "hello", "AUTH", "Client", "COMMAND", "QUIT"] {
            assert!(allowed_while_loading(name.as_bytes()), "{name}");
        }
    }
}
