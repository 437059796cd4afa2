//! Property tests: encode→parse round trips, and the parsers never panic or over-consume.

use bytes::Bytes;
use proptest::prelude::*;

use super::limits;
use crate::resp::encode::{encode_value, write_array_header, write_bulk};
use crate::resp::{Value, parse_request, parse_value};

/// A line payload: simple strings and errors cannot carry CR or LF.
fn line() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no line break", |b| *b != b'\r' && *b != b'\n'),
        0..16,
    )
    .prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        line().prop_map(Value::SimpleString),
        line().prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32))
            .prop_map(|b| Value::BulkString(b.map(Bytes::from))),
        Just(Value::Array(None)),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<f64>().prop_map(|n| {
            let mut out = Vec::new();
            crate::resp::encode::write_double(&mut out, crate::resp::Protocol::Resp3, n);
            Value::Double(Bytes::copy_from_slice(&out[1..out.len() - 2]))
        }),
        proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| Value::BlobError(Bytes::from(b))),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| Value::Verbatim {
            format: *b"txt",
            text: Bytes::from(b)
        }),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8)
                .prop_map(|items| Value::Array(Some(items))),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Set),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn values_round_trip_through_encode_and_parse(v in value(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut buf = Vec::new();
        encode_value(&v, &mut buf);
        let len = buf.len();
        for split in 0..len {
            prop_assert_eq!(parse_value(&buf[..split], &limits()), Ok(None));
        }
        buf.extend_from_slice(&tail);
        prop_assert_eq!(parse_value(&buf, &limits()), Ok(Some((v, len))));
    }

    #[test]
    fn requests_round_trip(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..6)) {
        let mut buf = Vec::new();
        write_array_header(&mut buf, args.len());
        for arg in &args {
            write_bulk(&mut buf, arg);
        }
        let (req, used) = parse_request(&buf, &limits()).expect("valid").expect("complete");
        prop_assert_eq!(used, buf.len());
        let got: Vec<Vec<u8>> = req.into_args().into_iter().map(|b| b.to_vec()).collect();
        prop_assert_eq!(got, args);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_overconsume(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some((_, used))) = parse_value(&buf, &limits()) {
            prop_assert!(used <= buf.len());
        }
        if let Ok(Some((_, used))) = parse_request(&buf, &limits()) {
            prop_assert!(used <= buf.len());
        }
    }

    #[test]
    fn resp_shaped_bytes_never_panic_or_overconsume(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(&b"*"[..]), Just(&b"$"[..]), Just(&b"+"[..]), Just(&b"-"[..]),
                Just(&b":"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..]), Just(&b"\n"[..]),
                Just(&b"-1"[..]), Just(&b"0"[..]), Just(&b"2"[..]), Just(&b"3"[..]),
                Just(&b"\""[..]), Just(&b"'"[..]), Just(&b"\\x4"[..]), Just(&b" "[..]),
                Just(&b"abc"[..]),
            ],
            0..32,
        )
    ) {
        let buf = parts.concat();
        if let Ok(Some((_, used))) = parse_value(&buf, &limits()) {
            prop_assert!(used <= buf.len());
        }
        if let Ok(Some((_, used))) = parse_request(&buf, &limits()) {
            prop_assert!(used <= buf.len());
        }
    }
}
