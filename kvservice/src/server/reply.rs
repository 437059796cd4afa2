//! Rendering state machine replies as RESP replies.

use super::commands::ReplyKind;
use crate::command::Reply;
use crate::resp::{Protocol, encode};

/// Appends the reply, in `proto`, to a command of `kind` that got `outcome` (an error
/// message starts with its code, e.g. `ERR ...`). A missing value is RESP2's null bulk
/// string or RESP3's null.
pub(crate) fn render(
    kind: ReplyKind,
    outcome: Result<&Reply, &str>,
    proto: Protocol,
    out: &mut Vec<u8>,
) {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(msg) => return encode::write_error(out, msg.as_bytes()),
    };
    match (kind, reply) {
        (_, Reply::SessionExpired) => encode::write_error(
            out,
            b"ERR session expired: the write may or may not have applied",
        ),
        (_, Reply::StaleRequest { .. }) => encode::write_error(
            out,
            b"ERR stale request: a later write of this connection already applied",
        ),
        (ReplyKind::Get, Reply::Value { value, .. }) => {
            write_optional_bulk(out, proto, value.as_deref())
        }
        (ReplyKind::Set { return_old: true }, Reply::SetDone { old, .. }) => {
            write_optional_bulk(out, proto, old.as_deref());
        }
        (ReplyKind::Set { return_old: false }, Reply::SetDone { stored, .. }) => {
            if *stored {
                encode::write_simple_string(out, b"OK");
            } else {
                encode::write_null(out, proto);
            }
        }
        (ReplyKind::Count, Reply::Count { count }) => {
            encode::write_integer(out, i64::try_from(*count).unwrap_or(i64::MAX));
        }
        (ReplyKind::MGet, Reply::Values { values }) => {
            encode::write_array_header(out, values.len());
            for v in values {
                write_optional_bulk(out, proto, v.as_deref());
            }
        }
        (ReplyKind::VGet, Reply::Value { value, version }) => {
            encode::write_array_header(out, 2);
            write_optional_bulk(out, proto, value.as_deref());
            encode::write_integer(out, i64::try_from(*version).unwrap_or(i64::MAX));
        }
        (ReplyKind::VSet, Reply::Written { .. }) => encode::write_simple_string(out, b"OK"),
        (ReplyKind::VSet, Reply::ErrVersion { current }) => encode::write_error(
            out,
            format!("ERRVERSION version mismatch: the key is at version {current}").as_bytes(),
        ),
        (ReplyKind::VSet, Reply::ErrNoKey) => {
            encode::write_error(out, b"ERRNOKEY no such key (use version 0 to create it)");
        }
        (kind, reply) => {
            tracing::error!(?kind, ?reply, "reply does not match the command");
            encode::write_error(out, b"ERR internal error: unexpected reply");
        }
    }
}

fn write_optional_bulk(out: &mut Vec<u8>, proto: Protocol, value: Option<&[u8]>) {
    match value {
        Some(v) => encode::write_bulk(out, v),
        None => encode::write_null(out, proto),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn r(kind: ReplyKind, reply: Reply) -> String {
        r_in(Protocol::Resp2, kind, reply)
    }

    fn r_in(proto: Protocol, kind: ReplyKind, reply: Reply) -> String {
        let mut out = Vec::new();
        render(kind, Ok(&reply), proto, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn replies() {
        let v = |s: &'static str| Some(Bytes::from_static(s.as_bytes()));
        let set = |stored, old| Reply::SetDone {
            stored,
            version: 1,
            old,
        };
        assert_eq!(
            r(ReplyKind::Set { return_old: false }, set(true, None)),
            "+OK\r\n"
        );
        assert_eq!(
            r(ReplyKind::Set { return_old: false }, set(false, None)),
            "$-1\r\n"
        );
        assert_eq!(
            r(ReplyKind::Set { return_old: true }, set(false, v("a"))),
            "$1\r\na\r\n"
        );
        assert_eq!(
            r(ReplyKind::Set { return_old: true }, set(true, None)),
            "$-1\r\n"
        );
        assert_eq!(
            r(
                ReplyKind::MGet,
                Reply::Values {
                    values: vec![v("a"), None]
                }
            ),
            "*2\r\n$1\r\na\r\n$-1\r\n"
        );
        assert_eq!(
            r(
                ReplyKind::VGet,
                Reply::Value {
                    value: None,
                    version: 0
                }
            ),
            "*2\r\n$-1\r\n:0\r\n"
        );
        assert_eq!(
            r(ReplyKind::VSet, Reply::ErrVersion { current: 3 }),
            "-ERRVERSION version mismatch: the key is at version 3\r\n"
        );
        assert!(r(ReplyKind::VSet, Reply::ErrNoKey).starts_with("-ERRNOKEY "));
        assert!(r(ReplyKind::Get, Reply::Count { count: 1 }).starts_with("-ERR internal"));
        let mut out = Vec::new();
        render(ReplyKind::Get, Err("ERR boom"), Protocol::Resp3, &mut out);
        assert_eq!(out, b"-ERR boom\r\n");
    }

    #[test]
    fn resp3_nulls() {
        let v = |s: &'static str| Some(Bytes::from_static(s.as_bytes()));
        let p = Protocol::Resp3;
        assert_eq!(
            r_in(
                p,
                ReplyKind::Get,
                Reply::Value {
                    value: None,
                    version: 0
                }
            ),
            "_\r\n"
        );
        assert_eq!(
            r_in(
                p,
                ReplyKind::Set { return_old: false },
                Reply::SetDone {
                    stored: false,
                    version: 1,
                    old: None
                }
            ),
            "_\r\n"
        );
        assert_eq!(
            r_in(
                p,
                ReplyKind::MGet,
                Reply::Values {
                    values: vec![None, v("a")]
                }
            ),
            "*2\r\n_\r\n$1\r\na\r\n"
        );
        assert_eq!(
            r_in(
                p,
                ReplyKind::VGet,
                Reply::Value {
                    value: None,
                    version: 0
                }
            ),
            "*2\r\n_\r\n:0\r\n"
        );
    }
}
