//! `COMMAND DOCS`: Redis 7's documentation map of each command (summary, since,
//! group, complexity), in Redis's words for Redis's commands. Arguments are not
//! described, so `redis-cli` shows no hints for them.

use super::commands::CommandSpec;
use crate::resp::{Protocol, encode};

/// One command's documentation.
struct Doc {
    name: &'static str,
    summary: &'static str,
    /// The Redis version that added it (raftkv's own commands: raftkv's version).
    since: &'static str,
    group: &'static str,
    complexity: &'static str,
}

const fn doc(
    name: &'static str,
    summary: &'static str,
    since: &'static str,
    group: &'static str,
    complexity: &'static str,
) -> Doc {
    Doc {
        name,
        summary,
        since,
        group,
        complexity,
    }
}

const ONE: &str = "O(1)";
const SUBCOMMAND: &str = "Depends on subcommand.";

/// One entry per command of [`COMMANDS`](super::commands::COMMANDS).
const DOCS: &[Doc] = &[
    doc(
        "get",
        "Returns the string value of a key.",
        "1.0.0",
        "string",
        ONE,
    ),
    doc(
        "set",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        "1.0.0",
        "string",
        ONE,
    ),
    doc(
        "del",
        "Deletes one or more keys.",
        "1.0.0",
        "generic",
        "O(N) where N is the number of keys that will be removed.",
    ),
    doc(
        "exists",
        "Determines whether one or more keys exist.",
        "3.0.3",
        "generic",
        "O(N) where N is the number of keys to check.",
    ),
    doc(
        "mget",
        "Atomically returns the string values of one or more keys.",
        "1.0.0",
        "string",
        "O(N) where N is the number of keys to retrieve.",
    ),
    doc(
        "dbsize",
        "Returns the number of keys in the database.",
        "1.0.0",
        "server",
        ONE,
    ),
    doc(
        "vget",
        "Returns the value of a key and its version (raftkv).",
        "0.1.0",
        "string",
        ONE,
    ),
    doc(
        "vset",
        "Sets the value of a key if it is at the given version (raftkv).",
        "0.1.0",
        "string",
        ONE,
    ),
    doc(
        "raftkv.backup",
        "Takes a consistent backup of the whole state and serves it in chunks (raftkv).",
        "0.1.0",
        "server",
        "O(N) where N is the number of keys (START); O(1) per chunk.",
    ),
    doc(
        "ping",
        "Returns the server's liveliness response.",
        "1.0.0",
        "connection",
        ONE,
    ),
    doc(
        "hello",
        "Handshakes with the Redis server.",
        "6.0.0",
        "connection",
        ONE,
    ),
    doc(
        "auth",
        "Authenticates the connection.",
        "1.0.0",
        "connection",
        "O(N) where N is the number of passwords defined for the user",
    ),
    doc(
        "echo",
        "Returns the given string.",
        "1.0.0",
        "connection",
        ONE,
    ),
    doc("quit", "Closes the connection.", "1.0.0", "connection", ONE),
    doc(
        "select",
        "Changes the selected database.",
        "1.0.0",
        "connection",
        ONE,
    ),
    doc(
        "command",
        "Returns detailed information about all commands.",
        "2.8.13",
        "server",
        "O(N) where N is the total number of Redis commands",
    ),
    doc(
        "client",
        "A container for client connection commands.",
        "2.4.0",
        "connection",
        SUBCOMMAND,
    ),
    doc(
        "config",
        "A container for server configuration commands.",
        "2.0.0",
        "server",
        SUBCOMMAND,
    ),
    doc(
        "info",
        "Returns information and statistics about the server.",
        "1.0.0",
        "server",
        ONE,
    ),
    doc(
        "cluster",
        "A container for Redis Cluster commands.",
        "3.0.0",
        "cluster",
        SUBCOMMAND,
    ),
    doc(
        "readonly",
        "Enables read-only queries for a connection to a Redis Cluster replica node.",
        "3.0.0",
        "cluster",
        ONE,
    ),
    doc(
        "readwrite",
        "Enables read-write queries for a connection to a Redis Cluster replica node.",
        "3.0.0",
        "cluster",
        ONE,
    ),
];

/// Appends the `COMMAND DOCS` reply for `specs`: a map from each name to its
/// documentation map.
pub(crate) fn write_command_docs(out: &mut Vec<u8>, proto: Protocol, specs: &[&CommandSpec]) {
    encode::write_map_header(out, proto, specs.len());
    for spec in specs {
        encode::write_bulk(out, spec.name.as_bytes());
        let Some(doc) = DOCS.iter().find(|d| d.name == spec.name) else {
            encode::write_map_header(out, proto, 0);
            continue;
        };
        encode::write_map_header(out, proto, 4);
        for (key, value) in [
            ("summary", doc.summary),
            ("since", doc.since),
            ("group", doc.group),
            ("complexity", doc.complexity),
        ] {
            encode::write_bulk(out, key.as_bytes());
            encode::write_bulk(out, value.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::COMMANDS;

    #[test]
    fn every_command_is_documented_once() {
        for spec in COMMANDS {
            let n = DOCS.iter().filter(|d| d.name == spec.name).count();
            assert_eq!(n, 1, "{} has {n} docs", spec.name);
        }
        assert_eq!(DOCS.len(), COMMANDS.len(), "no docs of unknown commands");
    }
}
