//! The RESP value model: the RESP2 types and the RESP3 ones.

use bytes::Bytes;

/// One RESP value. The first five are RESP2 (and RESP3); the rest exist only in RESP3
/// (a RESP2 connection gets them as [`encode`](super::encode)'s RESP2 equivalents).
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
    /// RESP3 null, `_\r\n`.
    Null,
    /// RESP3 boolean, `#t\r\n` / `#f\r\n`.
    Boolean(bool),
    /// RESP3 double, `,1.5\r\n`, kept as the text sent (`inf`, `-inf` and `nan`
    /// included), so that values compare and hash exactly.
    Double(Bytes),
    /// RESP3 big number, `(12345678901234567890\r\n`, as its digits.
    BigNumber(Bytes),
    /// RESP3 blob error, `!len\r\nCODE message\r\n`.
    BlobError(Bytes),
    /// RESP3 verbatim string, `=len\r\ntxt:text\r\n`: a three-byte format (`txt`,
    /// `mkd`) and the text.
    Verbatim {
        /// The format, e.g. `*b"txt"`.
        format: [u8; 3],
        /// The text after `fmt:`.
        text: Bytes,
    },
    /// RESP3 map, `%n\r\n` then n keys and values, in order.
    Map(Vec<(Value, Value)>),
    /// RESP3 set, `~n\r\n` then n values.
    Set(Vec<Value>),
    /// RESP3 push, `>n\r\n` then n values (out-of-band data, e.g. pub/sub messages).
    Push(Vec<Value>),
}
