//! Tests of the RESP codec.

mod malformed;
mod partial;
mod props;
mod roundtrip;

use bytes::Bytes;

use super::{Limits, Value};

fn bulk(s: &str) -> Value {
    Value::BulkString(Some(Bytes::copy_from_slice(s.as_bytes())))
}

fn args(list: &[&str]) -> Vec<Bytes> {
    list.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn limits() -> Limits {
    Limits::default()
}
