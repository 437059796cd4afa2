//! Turning a client request into a [`Call`]: what to run and how to answer it, with
//! Redis's arity, syntax and unknown-command errors.

use bytes::Bytes;

use crate::command::{Op, SetCond};
use crate::resp::encode;

/// What a request asks for.
#[derive(Debug)]
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
    /// `AUTH [user] password`.
    Auth {
        /// The user name, when given (only `default` exists).
        user: Option<Bytes>,
        /// The password.
        password: Bytes,
    },
    /// A KV operation, answered from the state machine.
    Kv(KvCall),
}

/// A KV operation and how to render its reply.
#[derive(Debug)]
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
    spec("ping", -1, &["fast"], (0, 0, 0), &["@fast", "@connection"]),
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
];

/// `CONFIG GET` answers these (what `redis-benchmark` asks at start); everything else
/// matches nothing.
const CONFIG: &[(&str, &str)] = &[("save", ""), ("appendonly", "no"), ("databases", "1")];

/// Parses a non-empty request.
pub(crate) fn parse(args: &[Bytes]) -> Call {
    let Some(name) = args.first() else {
        return error("ERR empty request");
    };
    let lower = name.to_ascii_lowercase();
    let Some(spec) = COMMANDS.iter().find(|c| c.name.as_bytes() == lower) else {
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
        "command" => parse_command(args),
        "client" => parse_client(args),
        "config" => parse_config(args),
        "info" => Call::Info(
            args[1..]
                .iter()
                .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
                .collect(),
        ),
        _ => Call::Reply(unknown_command(args)),
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

fn parse_command(args: &[Bytes]) -> Call {
    let Some(sub) = args.get(1) else {
        return reply(|out| {
            encode::write_array_header(out, COMMANDS.len());
            for spec in COMMANDS {
                write_command_info(out, spec);
            }
        });
    };
    match sub.to_ascii_lowercase().as_slice() {
        b"count" if args.len() == 2 => {
            reply(|out| encode::write_integer(out, COMMANDS.len() as i64))
        }
        b"count" => wrong_arity("command|count"),
        // Redis 7 answers a map of documentation; clients only use it for hints.
        b"docs" => reply(|out| encode::write_array_header(out, 0)),
        b"info" => reply(|out| {
            let names = &args[2..];
            if names.is_empty() {
                encode::write_array_header(out, COMMANDS.len());
                COMMANDS
                    .iter()
                    .for_each(|spec| write_command_info(out, spec));
                return;
            }
            encode::write_array_header(out, names.len());
            for name in names {
                let lower = name.to_ascii_lowercase();
                match COMMANDS.iter().find(|c| c.name.as_bytes() == lower) {
                    Some(spec) => write_command_info(out, spec),
                    None => encode::write_null_array(out),
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

/// Redis 7's command info: name, arity, flags, first key, last key, step, ACL
/// categories, tips, key specs, subcommands.
fn write_command_info(out: &mut Vec<u8>, spec: &CommandSpec) {
    encode::write_array_header(out, 10);
    encode::write_bulk(out, spec.name.as_bytes());
    encode::write_integer(out, spec.arity);
    encode::write_array_header(out, spec.flags.len());
    for flag in spec.flags {
        encode::write_simple_string(out, flag.as_bytes());
    }
    encode::write_integer(out, spec.first_key);
    encode::write_integer(out, spec.last_key);
    encode::write_integer(out, spec.step);
    encode::write_array_header(out, spec.acl.len());
    for cat in spec.acl {
        encode::write_simple_string(out, cat.as_bytes());
    }
    for _ in 0..3 {
        encode::write_array_header(out, 0);
    }
}

fn parse_client(args: &[Bytes]) -> Call {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"setname" if args.len() == 3 => {
            let name = &args[2];
            if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                error("ERR Client names cannot contain spaces, newlines or special characters.")
            } else {
                Call::ClientSetName(name.clone())
            }
        }
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

fn parse_config(args: &[Bytes]) -> Call {
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
            encode::write_array_header(out, matching.len() * 2);
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

fn error(msg: &str) -> Call {
    reply(|out| encode::write_error(out, msg.as_bytes()))
}

fn wrong_arity(name: &str) -> Call {
    error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn unknown_subcommand(sub: &[u8], command: &str) -> Call {
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
fn parse_i64(s: &[u8]) -> Option<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<Bytes> {
        s.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn reply_of(s: &[&str]) -> String {
        match parse(&args(s)) {
            Call::Reply(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            other => panic!("not an immediate reply: {other:?}"),
        }
    }

    fn op_of(s: &[&str]) -> Op {
        match parse(&args(s)) {
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
        assert_eq!(reply_of(&["command", "docs"]), "*0\r\n");
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
        assert_eq!(reply_of(&["config", "get", "maxmemory"]), "*0\r\n");
        assert_eq!(reply_of(&["client", "setinfo", "lib-name", "x"]), "+OK\r\n");
        assert!(matches!(parse(&args(&["quit"])), Call::Quit));
        assert!(matches!(
            parse(&args(&["client", "setname", "me"])),
            Call::ClientSetName(_)
        ));
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
