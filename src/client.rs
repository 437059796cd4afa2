//! [`RespClient`]: a small blocking Redis-protocol client for the `raftkv get|put|del`
//! commands and for tests. It speaks to any member; members forward to the leader.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_kvservice::resp::{Limits, Value, parse_value};

/// A client-side error, naming the member it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address could not be resolved.
    #[error("resolve {addr}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting, writing or reading failed.
    #[error("{op} {addr}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The member.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The member's reply is not valid RESP.
    #[error("reply from {addr}: {reason}")]
    Protocol {
        /// The member.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The member closed the connection before replying.
    #[error("{addr} closed the connection")]
    Closed {
        /// The member.
        addr: String,
    },
    /// No member answered before the deadline.
    #[error("no member answered within {waited:?}; last error: {last}")]
    Unavailable {
        /// How long was tried.
        waited: Duration,
        /// The last error seen.
        last: String,
    },
}

/// One connection to one member.
#[derive(Debug)]
pub struct RespClient {
    stream: TcpStream,
    addr: String,
    buf: Vec<u8>,
    limits: Limits,
}

impl RespClient {
    /// Connects to `addr` (`HOST:PORT`), waiting at most `timeout` to connect and for
    /// each reply.
    pub fn connect(addr: &str, timeout: Duration) -> Result<RespClient, ClientError> {
        let resolved: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|source| ClientError::Resolve {
                addr: addr.to_string(),
                source,
            })?
            .collect();
        let io = |op| {
            let addr = addr.to_string();
            move |source| ClientError::Io { op, addr, source }
        };
        let mut last = None;
        for a in &resolved {
            match TcpStream::connect_timeout(a, timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(timeout))
                        .map_err(io("configure"))?;
                    stream
                        .set_write_timeout(Some(timeout))
                        .map_err(io("configure"))?;
                    stream.set_nodelay(true).map_err(io("configure"))?;
                    return Ok(RespClient {
                        stream,
                        addr: addr.to_string(),
                        buf: Vec::with_capacity(4096),
                        limits: Limits::default(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(io("connect")(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
        })))
    }

    /// The member's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command (an array of bulk strings) and reads its reply.
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, ClientError> {
        self.send(args)?;
        self.read_reply()
    }

    /// Sends one command without reading its reply (for pipelining).
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), ClientError> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        self.send_raw(&out)
    }

    /// Writes raw bytes (tests use it for malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(bytes)
            .map_err(|source| ClientError::Io {
                op: "write to",
                addr: self.addr.clone(),
                source,
            })
    }

    /// Reads the next reply.
    pub fn read_reply(&mut self) -> Result<Value, ClientError> {
        loop {
            match parse_value(&self.buf, &self.limits) {
                Ok(Some((value, used))) => {
                    self.buf.drain(..used);
                    return Ok(value);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(ClientError::Protocol {
                        addr: self.addr.clone(),
                        reason: e.to_string(),
                    });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|source| ClientError::Io {
                    op: "read from",
                    addr: self.addr.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(ClientError::Closed {
                    addr: self.addr.clone(),
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Appends `args` as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether an error reply means "try another member" rather than a final answer.
fn is_retryable(message: &[u8]) -> bool {
    let m = String::from_utf8_lossy(message).to_ascii_lowercase();
    [
        "leader",
        "timed out",
        "timeout",
        "shut",
        "loading",
        "tryagain",
        "unavailable",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// Runs one command against the first member that gives a final answer, trying the
/// members in turn (and again, with a short pause) until `deadline` passes. Errors that
/// mean "no leader here yet" move on to the next member; any other reply is final.
pub fn run_on_any<A: AsRef<[u8]>>(
    addrs: &[String],
    args: &[A],
    timeout: Duration,
) -> Result<Value, ClientError> {
    let start = Instant::now();
    let per_call = timeout.min(Duration::from_secs(5));
    let mut last = String::from("no address given");
    let mut pause = Duration::from_millis(20);
    while start.elapsed() < timeout && !addrs.is_empty() {
        for addr in addrs {
            let reply = RespClient::connect(addr, per_call).and_then(|mut c| c.command(args));
            match reply {
                Ok(Value::Error(msg)) if is_retryable(&msg) => {
                    last = format!("{addr}: {}", String::from_utf8_lossy(&msg));
                }
                Ok(v) => return Ok(v),
                Err(e) => last = e.to_string(),
            }
        }
        std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    Err(ClientError::Unavailable {
        waited: start.elapsed(),
        last,
    })
}

/// Splits repeatable, comma-separated `--addr` values.
pub fn split_addrs(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The bytes of a bulk reply, `None` for nil.
pub fn bulk(value: &Value) -> Option<Bytes> {
    match value {
        Value::BulkString(b) => b.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addrs_split_on_commas_and_repeats() {
        let v = split_addrs(&["a:1,b:2".into(), " c:3 ".into(), ",".into()]);
        assert_eq!(v, vec!["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn commands_encode_as_bulk_arrays() {
        let mut out = Vec::new();
        encode_command(&["SET", "k", ""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn leader_errors_are_retryable_and_others_are_final() {
        assert!(is_retryable(
            b"ERR no reachable leader (last known leader: node 2)"
        ));
        assert!(!is_retryable(b"ERR syntax error"));
        assert!(!is_retryable(b"ERRVERSION key is at version 3"));
    }
}
