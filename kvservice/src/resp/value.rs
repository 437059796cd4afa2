//! The RESP2 value model.

use bytes::Bytes;

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `+OK\r\n`. Binary-safe here, but must not contain CR or LF: the encoder replaces
    /// them with spaces.
    SimpleString(Bytes),
    /// `-ERR message\r\n`. Same rule on CR and LF as [`Value::SimpleString`].
    Error(Bytes),
    /// `:42\r\n`.
    Integer(i64),
    /// `$3\r\nfoo\r\n`; `None` is the null bulk string `$-1\r\n`.
    BulkString(Option<Bytes>),
    /// `*2\r\n...`; `None` is the null array `*-1\r\n`.
    Array(Option<Vec<Value>>),
}
