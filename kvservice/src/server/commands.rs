//! Turning a client request into a [`Call`]: what to run and how to answer it, with
//! Redis's arity, syntax and unknown-command errors. Replies made here are rendered in
//! the connection's [`Protocol`] at the time of the request.

use bytes::Bytes;

use super::cluster::{ClusterCall, parse_cluster};
use super::command_docs::write_command_docs;
use super::hello::{Hello, parse_hello};
use crate::command::{Op, SetCond};
use crate::resp::{Protocol, encode};

/// What a request asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Call {
    /// Answered at once with these bytes (also every error found while parsing).
    Reply(Vec<u8>),
    /// `QUIT`: `+OK`, then close.
    Quit,
    /// `INFO`, with the sections asked for (lowercase; empty: the default set).
    Info(Vec<String>),
    /// `CLIENT SETNAME name`.
    ClientSetName(Bytes),
    /// `CLIENT GETNAME`.
    ClientGetName,
    /// `CLIENT ID`.
    ClientId,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello(Hello),
    /// `CLUSTER ...`, `READONLY`, `READWRITE` (answered only in MOVED mode).
    Cluster(ClusterCall),
    /// `AUTH [user] password`.
    Auth {
        /// The user name, when given (only `default` exists).
        user: Option<Bytes>,
        /// The password.
        password: Bytes,
    },
    /// A KV operation, answered from the state machine.
    Kv(KvCall),
    /// `RAFTKV.BACKUP START|CHUNK id offset|DONE id`.
    Backup(BackupCall),
}

/// A step of the hot backup protocol (see `crate::backup`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BackupCall {
    /// Take a backup at a read barrier: `[id, bytes, index, term, keys, crc32]`.
    Start,
    /// Up to 1 MiB of backup `id` from `offset`.
    Chunk {
        /// The backup.
        id: u64,
        /// Where to read from.
        offset: u64,
    },
    /// Drop backup `id`.
    Done {
        /// The backup.
        id: u64,
    },
}

/// A KV operation and how to render its reply.
#[derive(Debug, PartialEq)]
pub(crate) struct KvCall {
    pub(crate) kind: ReplyKind,
    pub(crate) op: Op,
}

/// How a state machine reply becomes a RESP reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    /// `GET`: bulk or nil.
    Get,
    /// `SET`: `+OK` / nil, or with `GET` the old value.
    Set { return_old: bool },
    /// `DEL`, `EXISTS`, `DBSIZE`: an integer.
    Count,
    /// `MGET`: an array of bulks and nils.
    MGet,
    /// `VGET`: `[value or nil, version]`.
    VGet,
    /// `VSET`: `+OK`, `-ERRVERSION ...` or `-ERRNOKEY ...`.
    VSet,
}

/// One command of the table `COMMAND` reports.
pub(crate) struct CommandSpec {
    pub(crate) name: &'static str,
    /// Redis arity: exact if positive, at least `-arity` if negative (name included).
    pub(crate) arity: i64,
    pub(crate) flags: &'static [&'static str],
    pub(crate) first_key: i64,
    pub(crate) last_key: i64,
    pub(crate) step: i64,
    pub(crate) acl: &'static [&'static str],
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    acl: &'static [&'static str],
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        acl,
    }
}

/// The commands served.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    spec(
        "get",
        2,
        &["readonly", "fast"],
        (1, 1, 1),
        &["@read", "@string", "@fast"],
    ),
    spec(
        "set",
        -3,
        &["write", "denyoom"],
        (1, 1, 1),
        &["@write", "@string", "@slow"],
    ),
    spec(
        "del",
        -2,
        &["write"],
        (1, -1, 1),
        &["@keyspace", "@write", "@slow"],
    ),
    spec(
        "exists",
        -2,
        &["readonly", "fast"],
        (1, -1, 1),
        &["@keyspace", "@read", "@fast"],
    ),
    spec(
        "mget",
        -2,
        &["readonly", "fast"],
        (1, -1, 1),
        &["@read", "@string", "@fast"],
    ),
    spec(
        "dbsize",
        1,
        &["readonly", "fast"],
        (0, 0, 0),
        &["@keyspace", "@read", "@fast"],
    ),
    spec(
        "vget",
        2,
        &["readonly", "fast"],
        (1, 1, 1),
        &["@read", "@string", "@fast"],
    ),
    spec(
        "vset",
        4,
        &["write", "denyoom"],
        (1, 1, 1),
        &["@write", "@string", "@slow"],
    ),
    spec(
        "raftkv.backup",
        -2,
        &["admin", "noscript"],
        (0, 0, 0),
        &["@admin", "@slow", "@dangerous"],
    ),
    spec("ping", -1, &["fast"], (0, 0, 0), &["@fast", "@connection"]),
    spec(
        "hello",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
    spec(
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
    spec("echo", 2, &["fast"], (0, 0, 0), &["@fast", "@connection"]),
    spec(
        "quit",
        -1,
        &["fast", "noscript", "loading", "stale"],
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
    spec(
        "select",
        2,
        &["loading", "stale", "fast"],
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
    spec(
        "command",
        -1,
        &["loading", "stale"],
        (0, 0, 0),
        &["@slow", "@connection"],
    ),
    spec(
        "client",
        -2,
        &["loading", "stale"],
        (0, 0, 0),
        &["@slow", "@connection"],
    ),
    spec(
        "config",
        -2,
        &["admin", "loading", "stale"],
        (0, 0, 0),
        &["@admin", "@slow", "@dangerous"],
    ),
    spec(
        "info",
        -1,
        &["loading", "stale"],
        (0, 0, 0),
        &["@slow", "@dangerous"],
    ),
    spec("cluster", -2, &[], (0, 0, 0), &["@slow"]),
    spec(
        "readonly",
        1,
        &["loading", "stale", "fast"],
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
    spec(
        "readwrite",
        1,
        &["loading", "stale", "fast"],
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
];

/// `CONFIG GET` answers these (what `redis-benchmark` and client libraries ask at
/// start); everything else matches nothing. Persistence is Raft's log and snapshots,
/// not RDB or AOF, and there is no memory limit or eviction.
const CONFIG: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("maxmemory", "0"),
    ("databases", "1"),
];

/// Parses a non-empty request, for a connection that speaks `proto`.
pub(crate) fn parse(args: &[Bytes], proto: Protocol) -> Call {
    let Some(name) = args.first() else {
        return error("ERR empty request");
    };
    let Some(spec) = find_command(name) else {
        return Call::Reply(unknown_command(args));
    };
    if !arity_ok(spec.arity, args.len()) {
        return wrong_arity(spec.name);
    }
    match spec.name {
        "get" => kv(
            ReplyKind::Get,
            Op::Get {
                key: args[1].clone(),
            },
        ),
        "set" => parse_set(args),
        "del" => kv(
            ReplyKind::Count,
            Op::DeleteMany {
                keys: args[1..].to_vec(),
            },
        ),
        "exists" => kv(
            ReplyKind::Count,
            Op::CountExisting {
                keys: args[1..].to_vec(),
            },
        ),
        "mget" => kv(
            ReplyKind::MGet,
            Op::GetMany {
                keys: args[1..].to_vec(),
            },
        ),
        "dbsize" => kv(ReplyKind::Count, Op::KeyCount),
        "vget" => kv(
            ReplyKind::VGet,
            Op::Get {
                key: args[1].clone(),
            },
        ),
        "vset" => match parse_u64(&args[3]) {
            Some(version) => kv(
                ReplyKind::VSet,
                Op::PutIf {
                    key: args[1].clone(),
                    value: args[2].clone(),
                    version,
                },
            ),
            None => error("ERR value is not an integer or out of range"),
        },
        "hello" => parse_hello(args).unwrap_or_else(|msg| error(&msg)),
        "ping" => match args.get(1) {
            None => reply(|out| encode::write_simple_string(out, b"PONG")),
            Some(msg) if args.len() == 2 => reply(|out| encode::write_bulk(out, msg)),
            Some(_) => wrong_arity("ping"),
        },
        "echo" => reply(|out| encode::write_bulk(out, &args[1])),
        "quit" => Call::Quit,
        "auth" => match args.len() {
            2 => Call::Auth {
                user: None,
                password: args[1].clone(),
            },
            3 => Call::Auth {
                user: Some(args[1].clone()),
                password: args[2].clone(),
            },
            _ => error("ERR syntax error"),
        },
        "select" => match parse_i64(&args[1]) {
            Some(0) => ok(),
            Some(_) => error("ERR DB index is out of range"),
            None => error("ERR value is not an integer or out of range"),
        },
        "raftkv.backup" => parse_backup(args),
        "command" => parse_command(args, proto),
        "cluster" | "readonly" | "readwrite" => parse_cluster(args),
        "client" => parse_client(args),
        "config" => parse_config(args, proto),
        "info" => Call::Info(
            args[1..]
                .iter()
                .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
                .collect(),
        ),
        _ => Call::Reply(unknown_command(args)),
    }
}

fn parse_backup(args: &[Bytes]) -> Call {
    let id = |a: &Bytes| {
        let s = std::str::from_utf8(a).ok()?;
        u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
    };
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"START", 2) => Call::Backup(BackupCall::Start),
        (b"CHUNK", 4) => match (id(&args[2]), parse_u64(&args[3])) {
            (Some(id), Some(offset)) => Call::Backup(BackupCall::Chunk { id, offset }),
            (None, _) => error("ERR backup id must be hexadecimal, as START returned it"),
            (_, None) => error("ERR value is not an integer or out of range"),
        },
        (b"DONE", 3) => match id(&args[2]) {
            Some(id) => Call::Backup(BackupCall::Done { id }),
            None => error("ERR backup id must be hexadecimal, as START returned it"),
        },
        (b"START" | b"CHUNK" | b"DONE", _) => error(&format!(
            "ERR wrong number of arguments for 'raftkv.backup|{}' command",
            String::from_utf8_lossy(&sub).to_ascii_lowercase()
        )),
        _ => error(&format!(
            "ERR unknown subcommand '{}'. Try RAFTKV.BACKUP START, CHUNK id offset, DONE id.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

fn parse_set(args: &[Bytes]) -> Call {
    let mut cond = SetCond::Always;
    let mut return_old = false;
    for opt in &args[3..] {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" if cond != SetCond::IfPresent => cond = SetCond::IfAbsent,
            b"XX" if cond != SetCond::IfAbsent => cond = SetCond::IfPresent,
            b"GET" => return_old = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                return error(
                    "ERR SET expiry options (EX, PX, EXAT, PXAT, KEEPTTL) are not supported: keys do not expire",
                );
            }
            _ => return error("ERR syntax error"),
        }
    }
    kv(
        ReplyKind::Set { return_old },
        Op::Set {
            key: args[1].clone(),
            value: args[2].clone(),
            cond,
            return_old,
        },
    )
}

fn parse_command(args: &[Bytes], proto: Protocol) -> Call {
    let Some(sub) = args.get(1) else {
        return reply(|out| {
            encode::write_array_header(out, COMMANDS.len());
            for spec in COMMANDS {
                write_command_info(out, proto, spec);
            }
        });
    };
    match sub.to_ascii_lowercase().as_slice() {
        b"count" if args.len() == 2 => {
            reply(|out| encode::write_integer(out, COMMANDS.len() as i64))
        }
        b"count" => wrong_arity("command|count"),
        b"docs" => reply(|out| {
            let names = &args[2..];
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| find_command(n)).collect()
            };
            write_command_docs(out, proto, &specs);
        }),
        b"info" => reply(|out| {
            let names = &args[2..];
            if names.is_empty() {
                encode::write_array_header(out, COMMANDS.len());
                COMMANDS
                    .iter()
                    .for_each(|spec| write_command_info(out, proto, spec));
                return;
            }
            encode::write_array_header(out, names.len());
            for name in names {
                match find_command(name) {
                    Some(spec) => write_command_info(out, proto, spec),
                    None => encode::write_null(out, proto),
                }
            }
        }),
        b"list" => reply(|out| {
            encode::write_array_header(out, COMMANDS.len());
            COMMANDS
                .iter()
                .for_each(|spec| encode::write_bulk(out, spec.name.as_bytes()));
        }),
        _ => unknown_subcommand(sub, "COMMAND"),
    }
}

/// The command named `name` (any case).
pub(crate) fn find_command(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Redis 7's command info: name, arity, flags (a set), first key, last key, step, ACL
/// categories (a set), tips (a set), key specs, subcommands (both empty here: clients
/// fall back to first key, last key and step).
fn write_command_info(out: &mut Vec<u8>, proto: Protocol, spec: &CommandSpec) {
    encode::write_array_header(out, 10);
    encode::write_bulk(out, spec.name.as_bytes());
    encode::write_integer(out, spec.arity);
    write_status_set(out, proto, spec.flags);
    encode::write_integer(out, spec.first_key);
    encode::write_integer(out, spec.last_key);
    encode::write_integer(out, spec.step);
    write_status_set(out, proto, spec.acl);
    write_status_set(out, proto, &[]);
    encode::write_array_header(out, 0);
    encode::write_array_header(out, 0);
}

fn write_status_set(out: &mut Vec<u8>, proto: Protocol, items: &[&str]) {
    encode::write_set_header(out, proto, items.len());
    for item in items {
        encode::write_simple_string(out, item.as_bytes());
    }
}

fn parse_client(args: &[Bytes]) -> Call {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"setname" if args.len() == 3 => match check_client_name(&args[2]) {
            Ok(()) => Call::ClientSetName(args[2].clone()),
            Err(msg) => error(msg),
        },
        b"setname" => wrong_arity("client|setname"),
        b"getname" if args.len() == 2 => Call::ClientGetName,
        b"getname" => wrong_arity("client|getname"),
        b"id" if args.len() == 2 => Call::ClientId,
        b"id" => wrong_arity("client|id"),
        // Client libraries announce themselves with it; nothing to store.
        b"setinfo" if args.len() == 4 => ok(),
        b"setinfo" => wrong_arity("client|setinfo"),
        _ => unknown_subcommand(&args[1], "CLIENT"),
    }
}

/// Redis's rule for client names (`CLIENT SETNAME`, `HELLO ... SETNAME`): printable
/// ASCII without spaces. `Err` carries the error reply.
pub(crate) fn check_client_name(name: &[u8]) -> Result<(), &'static str> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        Err("ERR Client names cannot contain spaces, newlines or special characters.")
    } else {
        Ok(())
    }
}

fn parse_config(args: &[Bytes], proto: Protocol) -> Call {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if args.len() >= 3 => reply(|out| {
            let matching: Vec<_> = CONFIG
                .iter()
                .filter(|(name, _)| {
                    args[2..]
                        .iter()
                        .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                })
                .collect();
            encode::write_map_header(out, proto, matching.len());
            for (name, value) in matching {
                encode::write_bulk(out, name.as_bytes());
                encode::write_bulk(out, value.as_bytes());
            }
        }),
        b"get" => wrong_arity("config|get"),
        _ => unknown_subcommand(&args[1], "CONFIG"),
    }
}

/// Glob matching with `*` and `?` (enough for `CONFIG GET` patterns).
fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob_match(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob_match(rest, &s[1..]),
    }
}

fn arity_ok(arity: i64, argc: usize) -> bool {
    let argc = argc as i64;
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

fn kv(kind: ReplyKind, op: Op) -> Call {
    Call::Kv(KvCall { kind, op })
}

fn reply(write: impl FnOnce(&mut Vec<u8>)) -> Call {
    let mut out = Vec::new();
    write(&mut out);
    Call::Reply(out)
}

fn ok() -> Call {
    reply(|out| encode::write_simple_string(out, b"OK"))
}

pub(crate) fn error(msg: &str) -> Call {
    reply(|out| encode::write_error(out, msg.as_bytes()))
}

pub(crate) fn wrong_arity(name: &str) -> Call {
    error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub(crate) fn unknown_subcommand(sub: &[u8], command: &str) -> Call {
    let mut msg = b"ERR unknown subcommand '".to_vec();
    msg.extend_from_slice(&sub[..sub.len().min(128)]);
    msg.extend_from_slice(format!("'. Try {command} HELP.").as_bytes());
    reply(|out| encode::write_error(out, &msg))
}

/// Redis 7's reply to an unknown command: the name (at most 128 bytes) and the first
/// arguments, quoted, while they total less than 128 bytes.
fn unknown_command(args: &[Bytes]) -> Vec<u8> {
    let name = &args[0];
    let mut quoted = Vec::new();
    for arg in &args[1..] {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        quoted.push(b'\'');
        quoted.extend_from_slice(&arg[..arg.len().min(room)]);
        quoted.extend_from_slice(b"' ");
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(&name[..name.len().min(128)]);
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend_from_slice(&quoted);
    let mut out = Vec::new();
    encode::write_error(&mut out, &msg);
    out
}

/// A canonical decimal `i64`, as Redis's `string2ll`.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let n = parse_u64(digits)?;
    if negative {
        if n == 0 {
            return None;
        }
        0i64.checked_sub_unsigned(n)
    } else {
        i64::try_from(n).ok()
    }
}

/// A canonical decimal `u64`: digits only, no leading zero.
fn parse_u64(s: &[u8]) -> Option<u64> {
    let (&first, _) = s.split_first()?;
    if !s.iter().all(u8::is_ascii_digit) || (first == b'0' && s.len() > 1) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A request's arguments from text, for tests.
#[cfg(test)]
pub(crate) fn args(s: &[&str]) -> Vec<Bytes> {
    s.iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(s: &[&str]) -> String {
        reply_in(Protocol::Resp2, s)
    }

    fn reply_in(proto: Protocol, s: &[&str]) -> String {
        match parse(&args(s), proto) {
            Call::Reply(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            other => panic!("not an immediate reply: {other:?}"),
        }
    }

    fn op_of(s: &[&str]) -> Op {
        match parse(&args(s), Protocol::Resp2) {
            Call::Kv(call) => call.op,
            other => panic!("not a KV call: {other:?}"),
        }
    }

    #[test]
    fn redis_error_wording() {
        assert_eq!(
            reply_of(&["foo", "a", "b"]),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            reply_of(&["FOO"]),
            "-ERR unknown command 'FOO', with args beginning with: \r\n"
        );
        let long = "x".repeat(300);
        let r = reply_of(&["foo", &long, "b"]);
        assert_eq!(
            r,
            format!(
                "-ERR unknown command 'foo', with args beginning with: '{}' \r\n",
                "x".repeat(128)
            )
        );
        assert_eq!(
            reply_of(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            reply_of(&["get", "a", "b"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            reply_of(&["set", "k", "v", "NX", "XX"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            reply_of(&["set", "k", "v", "xx", "nx"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            reply_of(&["set", "k", "v", "bogus"]),
            "-ERR syntax error\r\n"
        );
        assert!(reply_of(&["set", "k", "v", "EX", "10"]).starts_with("-ERR SET expiry"));
        assert_eq!(
            reply_of(&["config", "nope"]),
            "-ERR unknown subcommand 'nope'. Try CONFIG HELP.\r\n"
        );
        assert_eq!(
            reply_of(&["vset", "k", "v", "-1"]),
            "-ERR value is not an integer or out of range\r\n"
        );
    }

    #[test]
    fn set_options_combine() {
        assert_eq!(
            op_of(&["SET", "k", "v", "nx", "GET"]),
            Op::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                cond: SetCond::IfAbsent,
                return_old: true
            }
        );
        assert!(matches!(
            op_of(&["set", "k", "v", "XX", "xx"]),
            Op::Set {
                cond: SetCond::IfPresent,
                return_old: false,
                ..
            }
        ));
    }

    #[test]
    fn connection_commands() {
        assert_eq!(reply_of(&["PING"]), "+PONG\r\n");
        assert_eq!(reply_of(&["ping", "hi"]), "$2\r\nhi\r\n");
        assert_eq!(reply_of(&["echo", "hi"]), "$2\r\nhi\r\n");
        assert_eq!(reply_of(&["select", "0"]), "+OK\r\n");
        assert_eq!(
            reply_of(&["select", "1"]),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            reply_of(&["select", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert!(
            reply_of(&["command", "docs"]).starts_with(&format!("*{}\r\n", 2 * COMMANDS.len()))
        );
        assert_eq!(
            reply_of(&["command", "count"]),
            format!(":{}\r\n", COMMANDS.len())
        );
        assert!(reply_of(&["command"]).starts_with(&format!("*{}\r\n*10\r\n", COMMANDS.len())));
        assert_eq!(
            reply_of(&["config", "get", "save"]),
            "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
        );
        assert_eq!(
            reply_of(&["CONFIG", "GET", "appendonly"]),
            "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
        );
        assert_eq!(
            reply_of(&["config", "get", "maxmemory"]),
            "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
        );
        assert_eq!(reply_of(&["config", "get", "maxclients"]), "*0\r\n");
        assert_eq!(reply_of(&["client", "setinfo", "lib-name", "x"]), "+OK\r\n");
        assert!(matches!(
            parse(&args(&["quit"]), Protocol::Resp2),
            Call::Quit
        ));
        assert!(matches!(
            parse(&args(&["client", "setname", "me"]), Protocol::Resp2),
            Call::ClientSetName(_)
        ));
        assert_eq!(
            reply_of(&["client", "setname", "a b"]),
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        );
    }

    #[test]
    fn resp3_replies_use_resp3_types() {
        use Protocol::Resp3;
        assert_eq!(
            reply_in(Resp3, &["config", "get", "save", "databases"]),
            "%2\r\n$4\r\nsave\r\n$0\r\n\r\n$9\r\ndatabases\r\n$1\r\n1\r\n"
        );
        assert_eq!(reply_in(Resp3, &["config", "get", "nothing"]), "%0\r\n");
        assert_eq!(
            reply_in(Resp3, &["command", "info", "get", "nosuch"]),
            "*2\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
             ~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n*0\r\n*0\r\n_\r\n"
        );
        assert_eq!(
            reply_of(&["command", "info", "get", "nosuch"]),
            "*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
             *3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n$-1\r\n"
        );
        assert_eq!(
            reply_in(Resp3, &["command", "docs", "echo"]),
            "%1\r\n$4\r\necho\r\n%4\r\n\
             $7\r\nsummary\r\n$25\r\nReturns the given string.\r\n\
             $5\r\nsince\r\n$5\r\n1.0.0\r\n\
             $5\r\ngroup\r\n$10\r\nconnection\r\n\
             $10\r\ncomplexity\r\n$4\r\nO(1)\r\n"
        );
        assert_eq!(reply_in(Resp3, &["command", "docs", "nosuch"]), "%0\r\n");
        // What is not typed is the same in both.
        assert_eq!(reply_in(Resp3, &["ping"]), "+PONG\r\n");
        assert_eq!(reply_in(Resp3, &["echo", "x"]), "$1\r\nx\r\n");
    }

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-0", b"01", b"+1", b"1x", b"-"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"s?ve", b"save"));
        assert!(glob_match(b"app*", b"appendonly"));
        assert!(!glob_match(b"app", b"appendonly"));
    }
}
