//! [`parse_request`]: the little of HTTP/1.1 the metrics endpoint reads — a request line
//! and headers, no body — as a pure function over the bytes received so far.

/// Most bytes of request line and headers read before the request is refused.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// A complete request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ... as sent.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
}

/// What the bytes so far make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: read more.
    Incomplete,
    /// A well-formed head (whatever follows it is ignored: the connection closes after
    /// the response).
    Complete(Request),
    /// Not HTTP/1.x, or a head over [`MAX_REQUEST_BYTES`]: answer 400 and close.
    Malformed(&'static str),
}

/// Parses a request head from `buf` (everything read so far).
pub fn parse_request(buf: &[u8]) -> Parsed {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_REQUEST_BYTES {
            return Parsed::Malformed("request head too large");
        }
        return Parsed::Incomplete;
    };
    if end > MAX_REQUEST_BYTES {
        return Parsed::Malformed("request head too large");
    }
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Malformed("request head is not UTF-8");
    };
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Malformed("request line is not `METHOD TARGET HTTP/1.x`");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Parsed::Malformed("bad method");
    }
    if !target.starts_with('/') {
        return Parsed::Malformed("target is not an absolute path");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Parsed::Malformed("not HTTP/1.0 or HTTP/1.1");
    }
    for header in lines {
        match header.split_once(':') {
            Some((name, _))
                if !name.is_empty() && !name.bytes().any(|b| b.is_ascii_whitespace()) => {}
            _ => return Parsed::Malformed("bad header line"),
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Parsed::Complete(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A whole response with `Connection: close`.
pub fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(method: &str, path: &str) -> Parsed {
        Parsed::Complete(Request {
            method: method.into(),
            path: path.into(),
        })
    }

    #[test]
    fn a_scrape_parses_with_headers_and_a_query_string() {
        let req = b"GET /metrics?x=1 HTTP/1.1\r\nHost: localhost:9187\r\nAccept: */*\r\n\r\n";
        assert_eq!(parse_request(req), complete("GET", "/metrics"));
        assert_eq!(
            parse_request(b"HEAD / HTTP/1.0\r\n\r\n"),
            complete("HEAD", "/")
        );
    }

    #[test]
    fn a_head_arriving_in_pieces_is_incomplete_until_its_blank_line() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..req.len() {
            assert_eq!(parse_request(&req[..cut]), Parsed::Incomplete, "cut {cut}");
        }
        assert_eq!(parse_request(req), complete("GET", "/metrics"));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
            b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(bad), Parsed::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn an_endless_head_is_refused_once_over_the_limit() {
        let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while req.len() <= MAX_REQUEST_BYTES {
            req.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(parse_request(&req), Parsed::Malformed(_)));
        req.extend_from_slice(b"\r\n");
        assert!(matches!(parse_request(&req), Parsed::Malformed(_)));
    }

    #[test]
    fn responses_carry_their_length_and_close() {
        let r = response("404 Not Found", "text/plain", b"nope\n");
        let text = String::from_utf8(r).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 5\r\n") && text.contains("Connection: close"));
        assert!(text.ends_with("\r\n\r\nnope\n"));
    }
}
