//! Every strict prefix of a valid input needs more bytes; the whole input parses.

use super::limits;
use crate::resp::{parse_request, parse_value};

const VALUES: &[&[u8]] = &[
    b"+OK\r\n",
    b"-ERR bad thing\r\n",
    b":-12345\r\n",
    b"$5\r\nhello\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n+x\r\n$-1\r\n",
];

const REQUESTS: &[&[u8]] = &[
    b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n",
    b"*0\r\n",
    b"GET \"k k\" 'v'\r\n",
    b"PING\n",
];

#[test]
fn values_need_more_bytes_at_every_split_point() {
    for full in VALUES {
        for split in 0..full.len() {
            assert_eq!(
                parse_value(&full[..split], &limits()),
                Ok(None),
                "{full:?} cut at {split}"
            );
        }
        let (_, used) = parse_value(full, &limits())
            .expect("valid")
            .expect("complete");
        assert_eq!(used, full.len());
    }
}

#[test]
fn requests_need_more_bytes_at_every_split_point() {
    for full in REQUESTS {
        for split in 0..full.len() {
            assert_eq!(
                parse_request(&full[..split], &limits()),
                Ok(None),
                "{full:?} cut at {split}"
            );
        }
        let (_, used) = parse_request(full, &limits())
            .expect("valid")
            .expect("complete");
        assert_eq!(used, full.len());
    }
}
