//! Splitting an inline command line into arguments, as Redis's `sdssplitargs`.

use bytes::Bytes;

use super::ProtocolError;

/// Splits `line` (without its line end) on ASCII whitespace. An argument may be quoted:
/// `"..."` understands `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>`; `'...'`
/// understands `\'`. A closing quote must be followed by whitespace or the line end.
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|b| is_space(*b)) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let start = i;
        let unbalanced = ProtocolError::UnbalancedQuotes { offset: start };
        let mut arg = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match (line.get(i), line.get(i + 1)) {
                        (None, _) => return Err(unbalanced),
                        (Some(b'\\'), Some(b'x')) => {
                            if let Some(byte) = hex_byte(line.get(i + 2), line.get(i + 3)) {
                                arg.push(byte);
                                i += 4;
                            } else {
                                arg.push(b'x');
                                i += 2;
                            }
                        }
                        (Some(b'\\'), Some(&c)) => {
                            arg.push(unescape(c));
                            i += 2;
                        }
                        (Some(b'"'), next) => {
                            if next.is_some_and(|b| !is_space(*b)) {
                                return Err(unbalanced);
                            }
                            i += 1;
                            break;
                        }
                        (Some(&c), _) => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match (line.get(i), line.get(i + 1)) {
                        (None, _) => return Err(unbalanced),
                        (Some(b'\\'), Some(b'\'')) => {
                            arg.push(b'\'');
                            i += 2;
                        }
                        (Some(b'\''), next) => {
                            if next.is_some_and(|b| !is_space(*b)) {
                                return Err(unbalanced);
                            }
                            i += 1;
                            break;
                        }
                        (Some(&c), _) => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while let Some(&c) = line.get(i).filter(|b| !is_space(**b)) {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(arg));
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn unescape(c: u8) -> u8 {
    match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

fn hex_byte(hi: Option<&u8>, lo: Option<&u8>) -> Option<u8> {
    let digit = |b: Option<&u8>| char::from(*b?).to_digit(16);
    let value = digit(hi)? * 16 + digit(lo)?;
    u8::try_from(value).ok()
}
