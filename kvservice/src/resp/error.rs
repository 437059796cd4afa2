//! Protocol errors: what was malformed, and where.

/// Malformed or over-limit input. Offsets are byte offsets into the buffer given to the
/// parser. The message fits a `-ERR Protocol error: {message}` reply (see
/// [`write_protocol_error`](super::encode::write_protocol_error)); the connection should
/// then be closed, since the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A value started with a byte that is not a RESP type byte.
    #[error("invalid type byte '{}' at byte {offset}", escape(*.byte))]
    InvalidTypeByte {
        /// The byte found.
        byte: u8,
        /// Where.
        offset: usize,
    },
    /// A request array element was not a bulk string.
    #[error("expected '$', got '{}' at byte {offset}", escape(*.got))]
    ExpectedBulk {
        /// The byte found.
        got: u8,
        /// Where.
        offset: usize,
    },
    /// A number (length or integer) was not a canonical decimal `i64`.
    #[error("invalid {what} at byte {offset}")]
    InvalidNumber {
        /// Which number: `"bulk length"`, `"multibulk length"` or `"integer"`.
        what: &'static str,
        /// Where its header starts.
        offset: usize,
    },
    /// A length was negative and not the null marker `-1` (or was `-1` where null is
    /// not allowed).
    #[error("invalid {what} {len} at byte {offset}")]
    InvalidLength {
        /// Which length: `"bulk length"` or `"multibulk length"`.
        what: &'static str,
        /// The declared length.
        len: i64,
        /// Where its header starts.
        offset: usize,
    },
    /// A bulk string declared more bytes than [`Limits::max_bulk_bytes`](super::Limits).
    #[error("invalid bulk length {len} at byte {offset}: exceeds the limit of {max} bytes")]
    BulkTooLarge {
        /// The declared length.
        len: i64,
        /// The limit.
        max: usize,
        /// Where the header starts.
        offset: usize,
    },
    /// An array declared more elements than [`Limits::max_array_len`](super::Limits).
    #[error("invalid multibulk length {len} at byte {offset}: exceeds the limit of {max} elements")]
    ArrayTooLong {
        /// The declared length.
        len: i64,
        /// The limit.
        max: usize,
        /// Where the header starts.
        offset: usize,
    },
    /// Arrays nested deeper than [`Limits::max_depth`](super::Limits).
    #[error("array nesting deeper than {max} at byte {offset}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where the too-deep array starts.
        offset: usize,
    },
    /// A line did not end within its limit.
    #[error("too big {what} at byte {offset}: no line end within {max} bytes")]
    LineTooLong {
        /// Which line: e.g. `"inline request"`, `"bulk count string"`.
        what: &'static str,
        /// The limit.
        max: usize,
        /// Where the line starts.
        offset: usize,
    },
    /// A line or bulk payload was not followed by CRLF (a bare CR or LF, or a payload
    /// longer than declared).
    #[error("expected CRLF after {what} at byte {offset}")]
    ExpectedCrlf {
        /// What should have ended: e.g. `"bulk string payload"`.
        what: &'static str,
        /// Where the wrong byte is.
        offset: usize,
    },
    /// An inline request had an unclosed quote, or a closing quote not followed by a
    /// space.
    #[error("unbalanced quotes in request at byte {offset}")]
    UnbalancedQuotes {
        /// Where the offending argument starts.
        offset: usize,
    },
}

fn escape(byte: u8) -> std::ascii::EscapeDefault {
    std::ascii::escape_default(byte)
}
