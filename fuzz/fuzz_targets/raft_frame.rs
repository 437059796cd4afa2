//! Raft wire frames: the incremental decoder fed in arbitrary pieces, then every typed
//! payload decoder on each frame it yields.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use raftkv_consensus::transport::frame::{self, FrameDecoder, FrameKind};

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let mut dec = FrameDecoder::new(64 << 10);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(usize::from(step).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= 64 << 10);
                    match f.kind {
                        FrameKind::Message => {
                            let _ = frame::decode_message_frame(&f);
                        }
                        FrameKind::Hello => {
                            let _ = frame::decode_hello_frame(&f);
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
