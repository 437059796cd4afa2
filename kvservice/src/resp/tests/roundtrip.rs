//! Exact encodings and round trips of known values and requests.

use bytes::Bytes;

use super::{args, bulk, limits};
use crate::resp::encode::*;
use crate::resp::{ProtocolError, Value, parse_request, parse_value};

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

/// Each value encodes to exactly its bytes, and the bytes parse back to it.
fn assert_encodes_and_parses_exactly(cases: Vec<(Value, &[u8])>) {
    for (value, bytes) in cases {
        assert_eq!(encoded(&value), bytes, "{value:?}");
        assert_eq!(
            parse_value(bytes, &limits()),
            Ok(Some((value, bytes.len())))
        );
    }
}

#[test]
fn encodes_every_reply_kind_exactly() {
    let cases: Vec<(Value, &[u8])> = vec![
        (Value::SimpleString(Bytes::from_static(b"OK")), b"+OK\r\n"),
        (Value::Error(Bytes::from_static(b"ERR no")), b"-ERR no\r\n"),
        (Value::Integer(-42), b":-42\r\n"),
        (Value::Integer(i64::MIN), b":-9223372036854775808\r\n"),
        (bulk("foo"), b"$3\r\nfoo\r\n"),
        (bulk(""), b"$0\r\n\r\n"),
        (Value::BulkString(None), b"$-1\r\n"),
        (Value::Array(None), b"*-1\r\n"),
        (Value::Array(Some(vec![])), b"*0\r\n"),
        (
            Value::Array(Some(vec![bulk("a"), Value::Integer(1)])),
            b"*2\r\n$1\r\na\r\n:1\r\n",
        ),
    ];
    assert_encodes_and_parses_exactly(cases);
}

#[test]
fn encoder_replaces_line_breaks_in_simple_strings_and_errors() {
    let mut out = Vec::new();
    write_simple_string(&mut out, b"a\r\nb");
    write_error(&mut out, b"ERR x\ny");
    assert_eq!(out, b"+a  b\r\n-ERR x y\r\n");
}

#[test]
fn writes_protocol_error_reply() {
    let mut out = Vec::new();
    let err = ProtocolError::ExpectedBulk {
        got: b'x',
        offset: 4,
    };
    write_protocol_error(&mut out, &err);
    assert_eq!(
        out,
        b"-ERR Protocol error: expected '$', got 'x' at byte 4\r\n"
    );
}

#[test]
fn parses_multibulk_request_and_leaves_the_rest() {
    let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n";
    let (req, used) = parse_request(buf, &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!(req.args(), args(&["SET", "k", ""]).as_slice());
    assert_eq!(used, 26);
    let (req, used2) = parse_request(&buf[used..], &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!(req.into_args(), args(&["PING"]));
    assert_eq!(used + used2, buf.len());
}

#[test]
fn binary_safe_bulk_payload() {
    let buf = b"*1\r\n$4\r\n\r\n\0\xff\r\n";
    let (req, used) = parse_request(buf, &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!(req.args(), &[Bytes::from_static(b"\r\n\0\xff")]);
    assert_eq!(used, buf.len());
}

#[test]
fn empty_requests_are_returned_empty() {
    for buf in [&b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"   \n"] {
        let (req, used) = parse_request(buf, &limits())
            .expect("valid")
            .expect("complete");
        assert!(req.is_empty(), "{buf:?}");
        assert_eq!(used, buf.len());
    }
}

#[test]
fn parses_inline_commands_with_quotes() {
    let cases: &[(&[u8], &[&str])] = &[
        (b"PING\r\n", &["PING"]),
        (b"set  k\tv\n", &["set", "k", "v"]),
        (b"SET k \"a b\\n\\x41\"\r\n", &["SET", "k", "a b\nA"]),
        (b"SET k 'it\\'s'\r\n", &["SET", "k", "it's"]),
        (b"SET k \"\"\r\n", &["SET", "k", ""]),
    ];
    for (buf, want) in cases {
        let (req, used) = parse_request(buf, &limits())
            .expect("valid")
            .expect("complete");
        assert_eq!(req.args(), args(want).as_slice(), "{buf:?}");
        assert_eq!(used, buf.len());
    }
}

#[test]
fn nested_arrays_and_nulls_parse() {
    let buf = b"*3\r\n*1\r\n+OK\r\n$-1\r\n*-1\r\n";
    let want = Value::Array(Some(vec![
        Value::Array(Some(vec![Value::SimpleString(Bytes::from_static(b"OK"))])),
        Value::BulkString(None),
        Value::Array(None),
    ]));
    assert_eq!(parse_value(buf, &limits()), Ok(Some((want, buf.len()))));
}

#[test]
fn resp3_values_encode_and_parse_exactly() {
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let cases: Vec<(Value, &[u8])> = vec![
        (Value::Null, b"_\r\n"),
        (Value::Boolean(true), b"#t\r\n"),
        (Value::Boolean(false), b"#f\r\n"),
        (Value::Double(b("1.5")), b",1.5\r\n"),
        (Value::Double(b("-inf")), b",-inf\r\n"),
        (
            Value::BigNumber(b("3492890328409238509324850943850943825024385")),
            b"(3492890328409238509324850943850943825024385\r\n",
        ),
        (Value::BlobError(b("SYNTAX bad")), b"!10\r\nSYNTAX bad\r\n"),
        (
            Value::Verbatim {
                format: *b"txt",
                text: b("a\r\nb"),
            },
            b"=8\r\ntxt:a\r\nb\r\n",
        ),
        (
            Value::Map(vec![
                (bulk("proto"), Value::Integer(3)),
                (bulk("modules"), Value::Array(Some(vec![]))),
            ]),
            b"%2\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n",
        ),
        (Value::Map(vec![]), b"%0\r\n"),
        (
            Value::Set(vec![Value::SimpleString(b("readonly"))]),
            b"~1\r\n+readonly\r\n",
        ),
        (
            Value::Push(vec![bulk("message"), Value::Null]),
            b">2\r\n$7\r\nmessage\r\n_\r\n",
        ),
    ];
    assert_encodes_and_parses_exactly(cases);
}

#[test]
fn typed_writers_follow_the_protocol() {
    use crate::resp::Protocol::{Resp2, Resp3};
    let w = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("utf8")
    };
    assert_eq!(w(&|o| write_null(o, Resp2)), "$-1\r\n");
    assert_eq!(w(&|o| write_null(o, Resp3)), "_\r\n");
    assert_eq!(w(&|o| write_null_array(o, Resp2)), "*-1\r\n");
    assert_eq!(w(&|o| write_null_array(o, Resp3)), "_\r\n");
    assert_eq!(w(&|o| write_map_header(o, Resp2, 7)), "*14\r\n");
    assert_eq!(w(&|o| write_map_header(o, Resp3, 7)), "%7\r\n");
    assert_eq!(w(&|o| write_set_header(o, Resp2, 2)), "*2\r\n");
    assert_eq!(w(&|o| write_set_header(o, Resp3, 2)), "~2\r\n");
    assert_eq!(w(&|o| write_push_header(o, Resp2, 3)), "*3\r\n");
    assert_eq!(w(&|o| write_push_header(o, Resp3, 3)), ">3\r\n");
    assert_eq!(
        w(&|o| write_verbatim(o, Resp2, b"txt", b"# Server\r\n")),
        "$10\r\n# Server\r\n\r\n"
    );
    assert_eq!(
        w(&|o| write_verbatim(o, Resp3, b"txt", b"# Server\r\n")),
        "=14\r\ntxt:# Server\r\n\r\n"
    );
    assert_eq!(w(&|o| write_boolean(o, Resp2, true)), ":1\r\n");
    assert_eq!(w(&|o| write_boolean(o, Resp3, false)), "#f\r\n");
    for (n, text) in [
        (1.5, "1.5"),
        (3.0, "3"),
        (-0.25, "-0.25"),
        (1e-7, "1e-7"),
        (1e21, "1e21"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "nan"),
    ] {
        assert_eq!(w(&|o| write_double(o, Resp3, n)), format!(",{text}\r\n"));
        assert_eq!(
            w(&|o| write_double(o, Resp2, n)),
            format!("${}\r\n{text}\r\n", text.len())
        );
        if n.is_finite() {
            assert_eq!(text.parse::<f64>().expect("reads back"), n, "{text}");
        }
    }
}

#[test]
fn malformed_resp3_values_are_refused() {
    for bad in [
        &b"#x\r\n"[..],
        b"=3\r\ntxt\r\n",
        b"%-1\r\n",
        b"~-1\r\n",
        b"!-1\r\n",
        b"_x\r\n",
        b"|1\r\n",
    ] {
        assert!(
            parse_value(bad, &limits()).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Incomplete RESP3 values wait for more bytes.
    for partial in [&b"%1\r\n$1\r\na\r\n"[..], b"_\r", b"=8\r\ntxt:"] {
        assert_eq!(parse_value(partial, &limits()), Ok(None));
    }
}
