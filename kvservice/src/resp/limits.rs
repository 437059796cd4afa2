//! Size limits the parsers enforce before buffering or allocating.

/// Size limits the parsers enforce. Each is checked when a header is read, before the
/// payload it announces is waited for or allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string payload accepted, in bytes. Default 512 MiB, as Redis's
    /// `proto-max-bulk-len`.
    pub max_bulk_bytes: usize,
    /// Most elements accepted in one array (and arguments in one request). Default
    /// 1,048,576 (1024 * 1024), the multibulk limit of Redis up to 6.x. Arrays are not
    /// preallocated from this count: capacity grows with the bytes actually received.
    pub max_array_len: usize,
    /// Longest line accepted, in bytes, excluding its line terminator: an inline
    /// command, a simple string or an error. Default 64 KiB, as Redis's
    /// `PROTO_INLINE_MAX_SIZE`.
    pub max_inline_bytes: usize,
    /// Deepest nesting of arrays accepted by [`parse_value`](super::parse_value): a
    /// top-level array has depth 1. Bounds the parser's recursion. Default 128.
    /// Requests never nest, so [`parse_request`](super::parse_request) ignores it.
    pub max_depth: usize,
}

impl Limits {
    /// The default limits, as a constant.
    pub const DEFAULT: Limits = Limits {
        max_bulk_bytes: 512 * 1024 * 1024,
        max_array_len: 1024 * 1024,
        max_inline_bytes: 64 * 1024,
        max_depth: 128,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
