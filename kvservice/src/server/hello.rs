//! `HELLO [protover [AUTH username password] [SETNAME clientname]]`: the handshake that
//! selects the protocol (RESP2 or RESP3), optionally authenticating and naming the
//! connection at once, as in Redis 7.

use bytes::Bytes;

use super::commands::{Call, check_client_name, parse_i64};
use super::info::REDIS_VERSION;
use crate::resp::{Protocol, encode};

/// A parsed `HELLO`. The connection runs it: it authenticates if asked (a wrong
/// password is `-WRONGPASS` and changes nothing), then refuses with
/// [`NOAUTH_HELLO`] if the connection is still not authenticated, then sets the name
/// and the protocol and answers with [`write_hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The protocol asked for; `None`: keep the current one.
    pub(crate) protocol: Option<Protocol>,
    /// `AUTH username password`.
    pub(crate) auth: Option<(Bytes, Bytes)>,
    /// `SETNAME clientname` (already checked by Redis's rule for names).
    pub(crate) setname: Option<Bytes>,
}

/// Redis's reply to `HELLO` without `AUTH` on a connection that has not authenticated.
pub(crate) const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// Parses `HELLO`'s arguments (`args[0]` is the name); `Err` carries the error reply.
pub(crate) fn parse_hello(args: &[Bytes]) -> Result<Call, String> {
    let mut hello = Hello {
        protocol: None,
        auth: None,
        setname: None,
    };
    let Some(version) = args.get(1) else {
        return Ok(Call::Hello(hello));
    };
    let version =
        parse_i64(version).ok_or("ERR Protocol version is not an integer or out of range")?;
    hello.protocol =
        Some(Protocol::from_version(version).ok_or("NOPROTO unsupported protocol version")?);
    let mut rest = &args[2..];
    while let Some((opt, after)) = rest.split_first() {
        if opt.eq_ignore_ascii_case(b"AUTH") && after.len() >= 2 {
            hello.auth = Some((after[0].clone(), after[1].clone()));
            rest = &after[2..];
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && !after.is_empty() {
            check_client_name(&after[0])?;
            hello.setname = Some(after[0].clone());
            rest = &after[1..];
        } else {
            let shown = &opt[..opt.len().min(128)];
            return Err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(shown)
            ));
        }
    }
    Ok(Call::Hello(hello))
}

/// What `HELLO` reports about the server and the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HelloReply {
    /// The connection's id (`CLIENT ID`).
    pub(crate) id: u64,
    /// Redis Cluster mode (MOVED redirects) rather than standalone.
    pub(crate) cluster: bool,
    /// This member leads (`master`) or follows (`replica`).
    pub(crate) leader: bool,
}

/// Appends Redis 7's `HELLO` reply, in `proto` (the protocol just selected): a map of
/// server, version, proto, id, mode, role and modules (RESP2: a flat array of 14).
pub(crate) fn write_hello(out: &mut Vec<u8>, proto: Protocol, r: HelloReply) {
    encode::write_map_header(out, proto, 7);
    let pair = |out: &mut Vec<u8>, key: &str, value: &str| {
        encode::write_bulk(out, key.as_bytes());
        encode::write_bulk(out, value.as_bytes());
    };
    pair(out, "server", "redis");
    pair(out, "version", REDIS_VERSION);
    encode::write_bulk(out, b"proto");
    encode::write_integer(out, proto.version());
    encode::write_bulk(out, b"id");
    encode::write_integer(out, i64::try_from(r.id).unwrap_or(i64::MAX));
    pair(
        out,
        "mode",
        if r.cluster { "cluster" } else { "standalone" },
    );
    pair(out, "role", if r.leader { "master" } else { "replica" });
    encode::write_bulk(out, b"modules");
    encode::write_array_header(out, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::args;

    fn hello(s: &[&str]) -> Result<Hello, String> {
        match parse_hello(&args(s))? {
            Call::Hello(h) => Ok(h),
            other => panic!("not HELLO: {other:?}"),
        }
    }

    #[test]
    fn options_parse_as_redis_does() {
        assert_eq!(
            hello(&["HELLO"]),
            Ok(Hello {
                protocol: None,
                auth: None,
                setname: None
            })
        );
        let h = hello(&["hello", "3", "auth", "default", "pw", "SETNAME", "app"]).expect("ok");
        assert_eq!(h.protocol, Some(Protocol::Resp3));
        assert_eq!(
            h.auth,
            Some((Bytes::from_static(b"default"), Bytes::from_static(b"pw")))
        );
        assert_eq!(h.setname, Some(Bytes::from_static(b"app")));
        assert_eq!(
            hello(&["HELLO", "2"]).expect("ok").protocol,
            Some(Protocol::Resp2)
        );
        for v in ["1", "4", "-3"] {
            assert_eq!(
                hello(&["HELLO", v]),
                Err("NOPROTO unsupported protocol version".into())
            );
        }
        assert_eq!(
            hello(&["HELLO", "three"]),
            Err("ERR Protocol version is not an integer or out of range".into())
        );
        assert_eq!(
            hello(&["HELLO", "3", "AUTH", "default"]),
            Err("ERR Syntax error in HELLO option 'AUTH'".into())
        );
        assert_eq!(
            hello(&["HELLO", "3", "SETNAME"]),
            Err("ERR Syntax error in HELLO option 'SETNAME'".into())
        );
        assert_eq!(
            hello(&["HELLO", "3", "bogus"]),
            Err("ERR Syntax error in HELLO option 'bogus'".into())
        );
        assert_eq!(
            hello(&["HELLO", "3", "SETNAME", "a b"]),
            Err("ERR Client names cannot contain spaces, newlines or special characters.".into())
        );
    }

    #[test]
    fn the_reply_is_a_map_in_resp3_and_a_flat_array_in_resp2() {
        let fields = format!(
            "$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n${}\r\n{REDIS_VERSION}\r\n",
            REDIS_VERSION.len()
        );
        let mut out = Vec::new();
        let reply = HelloReply {
            id: 7,
            cluster: false,
            leader: true,
        };
        write_hello(&mut out, Protocol::Resp3, reply);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!(
                "%7\r\n{fields}$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
                 $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
            )
        );
        out.clear();
        write_hello(
            &mut out,
            Protocol::Resp2,
            HelloReply {
                cluster: true,
                leader: false,
                ..reply
            },
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!(
                "*14\r\n{fields}$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$7\r\ncluster\r\n\
                 $4\r\nrole\r\n$7\r\nreplica\r\n$7\r\nmodules\r\n*0\r\n"
            )
        );
    }
}
