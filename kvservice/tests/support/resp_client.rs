//! A raw RESP client over `std::net::TcpStream`, for tests that check replies byte by
//! byte. It parses replies with the server's own parser, so a reply that does not
//! parse fails the test.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use raftkv_kvservice::resp::{Limits, Value, parse_value};

/// Encodes `args` as a RESP array of bulk strings.
pub fn encode_request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// [`encode_request`] for text arguments.
pub fn req(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    encode_request(&args)
}

pub struct RespClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RespClient {
    pub fn connect(addr: SocketAddr) -> RespClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        RespClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one reply; returns it and its exact bytes.
    pub fn read_reply(&mut self) -> (Value, Vec<u8>) {
        loop {
            if let Some((value, used)) = parse_value(&self.buf, &Limits::DEFAULT).expect("reply") {
                let raw: Vec<u8> = self.buf.drain(..used).collect();
                return (value, raw);
            }
            let mut chunk = [0u8; 64 << 10];
            let n = self.stream.read(&mut chunk).expect("read a reply");
            assert!(
                n > 0,
                "connection closed; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads one reply and returns its exact bytes as a string.
    pub fn read_raw(&mut self) -> String {
        String::from_utf8_lossy(&self.read_reply().1).into_owned()
    }

    /// Reads `n` replies (a pipeline's) and returns their exact bytes, concatenated.
    pub fn read_raw_n(&mut self, n: usize) -> String {
        (0..n).map(|_| self.read_raw()).collect()
    }

    /// Sends a command and returns the exact bytes of its reply, as a string.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.send(&req(args));
        self.read_raw()
    }

    pub fn value(&mut self, args: &[&str]) -> Value {
        self.send(&req(args));
        self.read_reply().0
    }

    /// Sends binary `args` and asserts the exact bytes of the reply.
    pub fn expect(&mut self, args: &[&[u8]], reply: &str) {
        self.send(&encode_request(args));
        let got = self.read_raw();
        assert_eq!(
            got,
            reply,
            "reply to {:?}",
            String::from_utf8_lossy(&encode_request(args))
        );
    }

    /// Reads everything until the server closes the connection.
    pub fn rest(&mut self) -> String {
        let mut out = std::mem::take(&mut self.buf);
        let _ = self.stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Asserts the server closes the connection (after any buffered replies).
    pub fn expect_closed(&mut self) {
        assert!(self.buf.is_empty(), "unread: {:?}", self.buf);
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected close, got {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected close, got {e}"),
        }
    }
}

/// The exact bytes of Redis 7's `HELLO` reply from raftkv: RESP3 (`proto` 3) a map of
/// 7, RESP2 a flat array of 14.
pub fn hello_reply(proto: i64, id: i64, mode: &str, role: &str) -> String {
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let header = if proto == 3 { "%7" } else { "*14" };
    let mut out = format!("{header}\r\n");
    for (key, value) in [("server", "redis"), ("version", "7.2.0")] {
        out += &(bulk(key) + &bulk(value));
    }
    out += &format!("{}:{proto}\r\n{}:{id}\r\n", bulk("proto"), bulk("id"));
    for (key, value) in [("mode", mode), ("role", role)] {
        out += &(bulk(key) + &bulk(value));
    }
    out + &bulk("modules") + "*0\r\n"
}

/// The value under `key` in a map reply (RESP3 map, or RESP2 flat array of pairs).
pub fn field(reply: &Value, key: &str) -> Option<Value> {
    let key = Value::BulkString(Some(key.to_string().into()));
    match reply {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()),
        Value::Array(Some(items)) => items
            .chunks(2)
            .find(|pair| pair[0] == key)
            .and_then(|pair| pair.get(1).cloned()),
        _ => None,
    }
}
