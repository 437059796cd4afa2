//! RESP, the Redis serialization protocol (RESP2 and RESP3), as a pure codec: no IO,
//! no state between calls.
//!
//! - [`parse_request`] reads one client request: a RESP array of bulk strings (what
//!   client libraries send) or an inline command (a space-separated line, as typed over
//!   telnet, with Redis's quoting rules).
//! - [`parse_value`] reads any RESP2 or RESP3 value (replies, or tests).
//! - [`encode`] writes replies into a `Vec<u8>`, in the connection's [`Protocol`]:
//!   RESP3 types to a RESP3 connection, their RESP2 stand-ins (as Redis 7 writes them)
//!   to a RESP2 one.
//!
//! Both parsers take the bytes received so far and return `Ok(None)` when more bytes
//! are needed, or the item and how many bytes it used (never more than given). They
//! start from the beginning of the buffer on every call, so a caller keeps unconsumed
//! bytes and calls again after the next read. Every length is checked against
//! [`Limits`] as soon as its header line is read, before any payload is waited for or
//! allocated. A [`ProtocolError`] names what was wrong and its byte offset in the
//! buffer; a server replies with [`encode::write_protocol_error`] and closes the
//! connection, as Redis does.

mod cursor;
pub mod encode;
mod error;
mod inline;
mod limits;
mod parser;
mod protocol;
mod request;
mod value;

#[cfg(test)]
mod tests;

pub use error::ProtocolError;
pub use limits::Limits;
pub use parser::parse_value;
pub use protocol::Protocol;
pub use request::{Request, parse_request};
pub use value::Value;
