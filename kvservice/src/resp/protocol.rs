//! [`Protocol`]: which RESP version a connection speaks.

/// The RESP version of a connection's replies: RESP2 until the client sends `HELLO 3`,
/// as in Redis. Requests are parsed alike in both; only replies differ (nulls, maps,
/// sets, doubles, verbatim strings, pushes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2: one null (`$-1` / `*-1`), maps and sets as flat arrays.
    #[default]
    Resp2,
    /// RESP3: typed replies (`_`, `%`, `~`, `,`, `#`, `=`, `>`).
    Resp3,
}

impl Protocol {
    /// The protocol `HELLO <version>` selects: `2` or `3`.
    pub fn from_version(version: i64) -> Option<Protocol> {
        match version {
            2 => Some(Protocol::Resp2),
            3 => Some(Protocol::Resp3),
            _ => None,
        }
    }

    /// Its version number, as `HELLO` reports it (`proto`).
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}
