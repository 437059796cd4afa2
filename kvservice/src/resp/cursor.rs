//! Low-level reading shared by both parsers: lines, numbers, bulk payloads.

use super::ProtocolError;

/// The result of one parsing step: `Ok(None)` means more bytes are needed.
pub(crate) type Step<T> = Result<Option<T>, ProtocolError>;

/// Unwraps a [`Step`], returning `Ok(None)` from the caller when more bytes are needed.
macro_rules! need {
    ($step:expr) => {
        match $step? {
            Some(value) => value,
            None => return Ok(None),
        }
    };
}
pub(crate) use need;

/// Longest decimal `i64`: `-9223372036854775808`.
const MAX_NUMBER_LINE: usize = 20;

/// A read position in a borrowed buffer. Invariant: `pos <= buf.len()`.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Consumes `n` bytes, or all that remain if fewer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos += n.min(self.remaining());
    }

    /// Consumes and returns the next byte.
    pub(crate) fn next_byte(&mut self) -> Option<u8> {
        let byte = *self.rest().first()?;
        self.pos += 1;
        Some(byte)
    }

    /// Reads a line ended by CRLF, of at most `max_len` bytes before the CR. A bare CR or
    /// LF is an error.
    pub(crate) fn read_line(&mut self, max_len: usize, what: &'static str) -> Step<&'a [u8]> {
        let rest = self.rest();
        let window = &rest[..rest.len().min(max_len.saturating_add(1))];
        let Some(i) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
            if rest.len() > max_len {
                return Err(ProtocolError::LineTooLong {
                    what,
                    max: max_len,
                    offset: self.pos,
                });
            }
            return Ok(None);
        };
        let crlf_error = |at: usize| ProtocolError::ExpectedCrlf {
            what,
            offset: self.pos + at,
        };
        if window[i] == b'\n' {
            return Err(crlf_error(i));
        }
        match rest.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => {
                self.pos += i + 2;
                Ok(Some(&rest[..i]))
            }
            Some(_) => Err(crlf_error(i + 1)),
        }
    }

    /// Reads a canonical decimal `i64` line (no `+`, no leading zeros, no `-0`).
    /// `header` is the offset reported in errors. Rejects a non-numeric byte as soon as
    /// it arrives, without waiting for the line end.
    pub(crate) fn read_number(&mut self, what: &'static str, header: usize) -> Step<i64> {
        let invalid = ProtocolError::InvalidNumber {
            what,
            offset: header,
        };
        let line = match self.read_line(MAX_NUMBER_LINE, what) {
            Ok(Some(line)) => line,
            Ok(None) => {
                let partial = self.rest();
                let numeric = partial
                    .iter()
                    .take_while(|&&b| b != b'\r')
                    .enumerate()
                    .all(|(i, &b)| b.is_ascii_digit() || (i == 0 && b == b'-'));
                return if numeric { Ok(None) } else { Err(invalid) };
            }
            Err(ProtocolError::LineTooLong { .. }) => return Err(invalid),
            Err(e) => return Err(e),
        };
        parse_i64(line).map(Some).ok_or(invalid)
    }

    /// Reads a bulk payload of `len` bytes and its CRLF. Waits for nothing beyond that,
    /// and checks the terminator bytes as soon as they arrive.
    pub(crate) fn read_payload(&mut self, len: usize) -> Step<&'a [u8]> {
        let rest = self.rest();
        let crlf_error = |at: usize| ProtocolError::ExpectedCrlf {
            what: "bulk string payload",
            offset: self.pos + at,
        };
        if rest.len() > len && rest[len] != b'\r' {
            return Err(crlf_error(len));
        }
        if rest.len() - len.min(rest.len()) > 1 && rest[len + 1] != b'\n' {
            return Err(crlf_error(len + 1));
        }
        if rest.len() - len.min(rest.len()) < 2 {
            return Ok(None);
        }
        self.pos += len + 2;
        Ok(Some(&rest[..len]))
    }
}

/// Parses a canonical decimal `i64`, as Redis's `string2ll`: optional `-`, no `+`, no
/// leading zeros, no `-0`, no overflow.
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, s),
    };
    let (&first, _) = digits.split_first()?;
    if !digits.iter().all(u8::is_ascii_digit) || (first == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    digits.iter().try_fold(0i64, |acc, &d| {
        let d = i64::from(d - b'0');
        let acc = acc.checked_mul(10)?;
        if negative {
            acc.checked_sub(d)
        } else {
            acc.checked_add(d)
        }
    })
}

/// Checks a declared bulk length: `Ok(None)` for the null marker `-1`.
pub(crate) fn check_bulk_len(
    len: i64,
    max: usize,
    offset: usize,
) -> Result<Option<usize>, ProtocolError> {
    if len == -1 {
        return Ok(None);
    }
    if len < 0 {
        return Err(ProtocolError::InvalidLength {
            what: "bulk length",
            len,
            offset,
        });
    }
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(ProtocolError::BulkTooLarge { len, max, offset }),
    }
}

/// Checks a declared array length: `Ok(None)` for the null marker `-1`.
pub(crate) fn check_array_len(
    len: i64,
    max: usize,
    offset: usize,
) -> Result<Option<usize>, ProtocolError> {
    if len == -1 {
        return Ok(None);
    }
    if len < 0 {
        return Err(ProtocolError::InvalidLength {
            what: "multibulk length",
            len,
            offset,
        });
    }
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(ProtocolError::ArrayTooLong { len, max, offset }),
    }
}
