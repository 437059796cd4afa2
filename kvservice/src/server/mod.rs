//! The Redis-protocol (RESP2 and RESP3) server of the KV service.
//!
//! [`RespServer`] listens on a TCP address and serves any Redis client (`redis-cli`,
//! `redis-benchmark`, client libraries) from one [`Replica`](crate::replica::Replica).
//! Any member accepts any command: a follower forwards writes and linearizable reads
//! to the leader through a [`Forwarder`], and the leader runs them with
//! [`serve_forwarded`].
//!
//! # Commands
//!
//! `PING`, `ECHO`, `GET`, `SET` (`NX`, `XX`, `GET`; no expiry options), `DEL`,
//! `EXISTS`, `MGET`, `DBSIZE`, `QUIT`, `HELLO`, `COMMAND` (`COUNT`, `DOCS`, `INFO`,
//! `LIST`), `SELECT 0`, `CLIENT` (`SETNAME`, `GETNAME`, `SETINFO`, `ID`), `CONFIG GET`
//! (`save`, `appendonly`, `maxmemory`, `databases`), `INFO [section ...]` (with
//! `redis_version` and `redis_mode`, and a `# Raft` section), and the versioned
//! commands of the lab:
//!
//! * `VGET key` → `[value or nil, version]` (version 0 when the key does not exist);
//! * `VSET key value version` → `+OK` if the key is at `version` (0: it must not
//!   exist), else `-ERRVERSION version mismatch: the key is at version N`, or, for a
//!   non-zero version on a missing key (the lab's `ErrNoKey`),
//!   `-ERRNOKEY no such key (use version 0 to create it)`.
//!
//! # Protocol
//!
//! A connection speaks RESP2 until `HELLO 3`, then RESP3 until `HELLO 2`, as in Redis 7:
//! `HELLO [2|3] [AUTH user pass] [SETNAME name]` answers a map of `server`, `version`,
//! `proto`, `id`, `mode`, `role` and `modules` (a flat array of 14 in RESP2), and an
//! unsupported version gets `-NOPROTO`. In RESP3 a missing value is `_` (`GET`, `MGET`
//! elements, `VGET`, `SET NX` not done, `CLIENT GETNAME`), `CONFIG GET` and
//! `COMMAND DOCS` answer maps, `COMMAND`'s flags and categories are sets, and `INFO` is
//! a verbatim string (`=len\r\ntxt:...`). Replies are rendered in the protocol in force
//! when their request was parsed, so a pipeline may switch between its commands.
//!
//! # Redirects
//!
//! By default ([`Redirect::Forward`]) a follower runs commands at the leader. With
//! [`Redirect::Moved`] it answers as a Redis Cluster node instead:
//! `-MOVED <slot> <leader-host>:<port>` (the slot is CRC16 of the command's first key
//! mod 16384, with `{hash tag}`s; 0 without keys), or `-CLUSTERDOWN The cluster is
//! down` when no leader is known within the retry budget; `CLUSTER SLOTS`, `SHARDS`,
//! `NODES`, `INFO`, `MYID` and `KEYSLOT` describe one shard holding every slot with
//! the leader as master, and `INFO` / `HELLO` report cluster mode. The members' client
//! addresses come from [`ServerConfig::client_addrs`].
//!
//! # Authentication
//!
//! With [`ServerConfig::requirepass`] set, a connection starts unauthenticated, as in
//! Redis: `AUTH password` or `AUTH default password` authenticates it (`+OK`, or
//! `-WRONGPASS ...`; the password is compared in constant time), every other command
//! but `QUIT` is answered `-NOAUTH Authentication required.`, and its requests are
//! parsed one at a time with at most 10 arguments of at most 16 KiB each; a larger one
//! is a protocol error that closes the connection. Without a password, `AUTH password`
//! answers Redis's "called without any password configured" error, while the `default`
//! user takes any password (`AUTH default x`, `HELLO 3 AUTH default x`), as Redis's
//! `nopass` default user does.
//!
//! # Pipelining and batching
//!
//! A connection parses every complete request in its buffer (up to
//! [`ServerConfig::max_batch`]) and runs them as one batch, in order, then writes all
//! the replies with one write. Consecutive writes are packed into one
//! [`Op::Batch`](crate::command::Op::Batch) command with one sequence number (split
//! by [`ServerConfig::max_write_command_bytes`]), so the dedup table answers a retry
//! of the whole pack; consecutive reads share one read barrier. Reads after writes
//! run after those writes applied, so every command sees the effects of the ones
//! before it on its connection.
//!
//! # Exactly once
//!
//! Each connection is a client session (a random id, sequence numbers from 1). The
//! server retries transient failures (no leader, leader change, timeout, forwarding
//! error) for [`ServerConfig::retry_budget`] with the same (client id, sequence
//! number), and a connection has at most one write command in flight, so a retry is
//! applied at most once and answered with the original reply.

mod auth;
mod backup_cmd;
mod cluster;
mod command_docs;
mod commands;
mod config;
mod connection;
mod error;
mod exec;
mod forward;
mod hello;
mod info;
mod loading;
mod reply;
mod resp_server;
mod router;
mod session;
mod slot;
mod stats;

pub use config::{Password, Redirect, ServerConfig, split_host_port};
pub use error::ServerError;
pub use exec::{ExecError, execute_batch, execute_batch_async};
pub use forward::{
    FORWARD_FORMAT, ForwardReply, ForwardRequest, Forwarder, decode_forward_reply,
    decode_forward_request, encode_forward_request, serve_forwarded,
};
pub use resp_server::RespServer;
pub use stats::ServerStats;
