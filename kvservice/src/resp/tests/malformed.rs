//! Each kind of malformed or over-limit input gives its exact error, never a panic.

use super::limits;
use crate::resp::{Limits, ProtocolError as E, parse_request, parse_value};

#[test]
fn malformed_values_give_exact_errors() {
    let cases: &[(&[u8], E)] = &[
        (
            b"?x\r\n",
            E::InvalidTypeByte {
                byte: b'?',
                offset: 0,
            },
        ),
        (
            b"*1\r\n?",
            E::InvalidTypeByte {
                byte: b'?',
                offset: 4,
            },
        ),
        (
            b"$x\r\n",
            E::InvalidNumber {
                what: "bulk length",
                offset: 0,
            },
        ),
        // Rejected before the line end arrives.
        (
            b"$1a",
            E::InvalidNumber {
                what: "bulk length",
                offset: 0,
            },
        ),
        (
            b"$+1\r\n",
            E::InvalidNumber {
                what: "bulk length",
                offset: 0,
            },
        ),
        (
            b"$01\r\n",
            E::InvalidNumber {
                what: "bulk length",
                offset: 0,
            },
        ),
        (
            b"$-0\r\n",
            E::InvalidNumber {
                what: "bulk length",
                offset: 0,
            },
        ),
        (
            b"$\r\n",
            E::InvalidNumber {
                what: "bulk length",
                offset: 0,
            },
        ),
        (
            b":99999999999999999999\r\n",
            E::InvalidNumber {
                what: "integer",
                offset: 0,
            },
        ),
        (
            b"*123456789012345678901",
            E::InvalidNumber {
                what: "multibulk length",
                offset: 0,
            },
        ),
        (
            b"$-2\r\n",
            E::InvalidLength {
                what: "bulk length",
                len: -2,
                offset: 0,
            },
        ),
        (
            b"*-5\r\n",
            E::InvalidLength {
                what: "multibulk length",
                len: -5,
                offset: 0,
            },
        ),
        (
            b"$3\nfoo",
            E::ExpectedCrlf {
                what: "bulk length",
                offset: 2,
            },
        ),
        (
            b"$3\rxfoo",
            E::ExpectedCrlf {
                what: "bulk length",
                offset: 3,
            },
        ),
        (
            b"+OK\n",
            E::ExpectedCrlf {
                what: "simple string",
                offset: 3,
            },
        ),
        // Payload longer than declared, detected at the first extra byte.
        (
            b"$3\r\nfoob",
            E::ExpectedCrlf {
                what: "bulk string payload",
                offset: 7,
            },
        ),
        (
            b"$3\r\nfoo\rx",
            E::ExpectedCrlf {
                what: "bulk string payload",
                offset: 8,
            },
        ),
    ];
    for (buf, want) in cases {
        assert_eq!(parse_value(buf, &limits()).as_ref(), Err(want), "{buf:?}");
    }
}

#[test]
fn malformed_requests_give_exact_errors() {
    let cases: &[(&[u8], E)] = &[
        (
            b"*1\r\n:1\r\n",
            E::ExpectedBulk {
                got: b':',
                offset: 4,
            },
        ),
        (
            b"*2\r\n$1\r\na\r\n+b\r\n",
            E::ExpectedBulk {
                got: b'+',
                offset: 11,
            },
        ),
        (
            b"*1\r\n$-1\r\n",
            E::InvalidLength {
                what: "bulk length",
                len: -1,
                offset: 4,
            },
        ),
        (
            b"*1\r\n$x\r\n",
            E::InvalidNumber {
                what: "bulk length",
                offset: 4,
            },
        ),
        (
            b"*-2\r\n",
            E::InvalidLength {
                what: "multibulk length",
                len: -2,
                offset: 0,
            },
        ),
        (b"SET \"a\r\n", E::UnbalancedQuotes { offset: 4 }),
        (b"SET \"a\"b\r\n", E::UnbalancedQuotes { offset: 4 }),
        (b"SET 'a\n", E::UnbalancedQuotes { offset: 4 }),
    ];
    for (buf, want) in cases {
        assert_eq!(parse_request(buf, &limits()).as_ref(), Err(want), "{buf:?}");
    }
}

#[test]
fn oversized_bulk_header_is_rejected_with_no_payload_sent() {
    let limits = Limits::default();
    let declared = limits.max_bulk_bytes as i64 + 1;
    let header = format!("*1\r\n${declared}\r\n");
    let want = E::BulkTooLarge {
        len: declared,
        max: limits.max_bulk_bytes,
        offset: 4,
    };
    assert_eq!(parse_request(header.as_bytes(), &limits), Err(want.clone()));
    assert_eq!(
        parse_value(&header.as_bytes()[4..], &limits),
        Err(E::BulkTooLarge {
            len: declared,
            max: limits.max_bulk_bytes,
            offset: 0,
        })
    );
    // Exactly at the limit is accepted: still waiting for the payload.
    let at_limit = format!("*1\r\n${}\r\n", limits.max_bulk_bytes);
    assert_eq!(parse_request(at_limit.as_bytes(), &limits), Ok(None));
    assert_eq!(
        want.to_string(),
        "invalid bulk length 536870913 at byte 4: exceeds the limit of 536870912 bytes"
    );
}

#[test]
fn huge_lengths_are_limited_or_bounded_by_received_bytes() {
    let small = Limits {
        max_bulk_bytes: 4,
        max_array_len: 2,
        max_inline_bytes: 8,
        max_depth: 2,
    };
    assert_eq!(
        parse_request(b"*3\r\n", &small),
        Err(E::ArrayTooLong {
            len: 3,
            max: 2,
            offset: 0
        })
    );
    assert_eq!(
        parse_value(b"*9223372036854775807\r\n", &limits()),
        Err(E::ArrayTooLong {
            len: i64::MAX,
            max: 1024 * 1024,
            offset: 0
        })
    );
    // At the array limit: waits for elements without preallocating a million slots.
    assert_eq!(parse_value(b"*1048576\r\n", &limits()), Ok(None));
    assert_eq!(
        parse_value(b"$9223372036854775807\r\n", &limits()),
        Err(E::BulkTooLarge {
            len: i64::MAX,
            max: 512 * 1024 * 1024,
            offset: 0
        })
    );
    assert_eq!(
        parse_value(b"*1\r\n*1\r\n*1\r\n", &small),
        Err(E::TooDeep { max: 2, offset: 8 })
    );
    assert_eq!(
        parse_value(b"+123456789", &small),
        Err(E::LineTooLong {
            what: "simple string",
            max: 8,
            offset: 1
        })
    );
    assert_eq!(
        parse_request(b"123456789\r", &small),
        Err(E::LineTooLong {
            what: "inline request",
            max: 8,
            offset: 0
        })
    );
    assert_eq!(parse_request(b"12345678\r", &small), Ok(None));
    assert!(parse_request(b"12345678\r\n", &small).is_ok_and(|r| r.is_some()));
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let buf = b"*1\r\n".repeat(100_000);
    assert_eq!(
        parse_value(&buf, &limits()),
        Err(E::TooDeep {
            max: 128,
            offset: 128 * 4
        })
    );
}
