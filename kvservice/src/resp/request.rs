//! Parsing client requests: RESP arrays of bulk strings, or inline commands.

use bytes::Bytes;

use super::cursor::{Cursor, Step, check_array_len, need};
use super::inline::split_args;
use super::parser::bulk_after_type;
use super::{Limits, ProtocolError};

/// One client request: the command name and its arguments, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    args: Vec<Bytes>,
}

impl Request {
    /// A request of these arguments (the first is the command name).
    pub fn new(args: Vec<Bytes>) -> Self {
        Self { args }
    }

    /// The arguments; the first is the command name. Empty for an empty request (`*0`,
    /// `*-1` or a blank inline line), which a server ignores, as Redis does.
    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    /// Takes the arguments.
    pub fn into_args(self) -> Vec<Bytes> {
        self.args
    }

    /// Whether the request has no arguments and should be ignored.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

/// Parses one client request from the start of `buf`: a RESP array of bulk strings if
/// `buf` starts with `*`, otherwise an inline command line (ended by LF or CRLF, split
/// on whitespace with Redis's quoting rules).
///
/// Returns `Ok(None)` if `buf` holds an incomplete but so-far valid request, or the
/// request and the number of bytes it used (at most `buf.len()`).
///
/// # Errors
///
/// [`ProtocolError`] on malformed input or input over `limits`. A bulk string longer
/// than [`Limits::max_bulk_bytes`] is rejected as soon as its header line is complete,
/// before any of its payload arrives.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Request, usize)>, ProtocolError> {
    let mut cur = Cursor::new(buf);
    let request = match buf.first() {
        None => return Ok(None),
        Some(b'*') => multibulk(&mut cur, limits)?,
        Some(_) => inline(&mut cur, buf, limits)?,
    };
    Ok(request.map(|request| (request, cur.pos())))
}

fn multibulk(cur: &mut Cursor<'_>, limits: &Limits) -> Step<Request> {
    let _star = cur.next_byte();
    let len = need!(cur.read_number("multibulk length", 0));
    let Some(len) = check_array_len(len, limits.max_array_len, 0)? else {
        return Ok(Some(Request::default()));
    };
    // Bounded by received bytes, not the declared count: `$0\r\n\r\n` is 6 bytes.
    let mut args = Vec::with_capacity(len.min(cur.remaining() / 6));
    for _ in 0..len {
        let offset = cur.pos();
        match cur.next_byte() {
            None => return Ok(None),
            Some(b'$') => {}
            Some(got) => return Err(ProtocolError::ExpectedBulk { got, offset }),
        }
        match need!(bulk_after_type(cur, limits, offset)) {
            Some(arg) => args.push(arg),
            None => {
                return Err(ProtocolError::InvalidLength {
                    what: "bulk length",
                    len: -1,
                    offset,
                });
            }
        }
    }
    Ok(Some(Request::new(args)))
}

fn inline(cur: &mut Cursor<'_>, buf: &[u8], limits: &Limits) -> Step<Request> {
    let max = limits.max_inline_bytes;
    // The line may be followed by "\r\n": look at most two bytes past the limit.
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    let too_long = ProtocolError::LineTooLong {
        what: "inline request",
        max,
        offset: 0,
    };
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() > max.saturating_add(1) {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max {
        return Err(too_long);
    }
    let args = split_args(line)?;
    cur.advance(lf + 1);
    Ok(Some(Request::new(args)))
}
