//! Compressing one frame and checking + decompressing one frame. Both are pure functions
//! over buffers, so that the writer and the reader can run them on a helper thread.

use std::io::Cursor;
use std::path::Path;

use crc32fast::Hasher;

use super::format::{self, FRAME_CRC_PREFIX, FRAME_HEADER_LEN, FrameRef};
use crate::error::StorageError;
use crate::persister::Result;

/// Compresses `src` (one frame of payload) into `out` as a complete frame: frame header
/// followed by an independent zstd frame. Returns the crc32 state of the whole frame's
/// bytes, for the file's body crc.
pub(crate) fn compress_frame(
    cctx: &mut zstd::bulk::Compressor<'static>,
    src: &[u8],
    out: &mut Vec<u8>,
    path: &Path,
) -> Result<Hasher> {
    assert!(!src.is_empty() && src.len() <= format::MAX_FRAME_BYTES as usize);
    out.clear();
    out.resize(FRAME_HEADER_LEN, 0);
    out.reserve(format::compress_bound(src.len()));
    let mut cursor = Cursor::new(std::mem::take(out));
    cursor.set_position(FRAME_HEADER_LEN as u64);
    let written = cctx.compress_to_buffer(src, &mut cursor);
    *out = cursor.into_inner();
    let clen = written.map_err(|e| StorageError::io("zstd-compress snapshot frame", path, e))?;
    assert_eq!(
        out.len(),
        FRAME_HEADER_LEN + clen,
        "zstd wrote past what it reported"
    );
    // `src.len() <= MAX_FRAME_BYTES` and `clen <= compress_bound(MAX_FRAME_BYTES)`, which
    // both fit a u32.
    let ulen = u32::try_from(src.len()).expect("frame size fits u32");
    let clen = u32::try_from(clen).expect("compressed frame size fits u32");
    let lens = format::encode_frame_header(ulen, clen, 0);
    let (hdr, data) = out.split_at_mut(FRAME_HEADER_LEN);
    let (crc, piece) = frame_crcs(&lens[..FRAME_CRC_PREFIX], data);
    hdr.copy_from_slice(&format::encode_frame_header(ulen, clen, crc));
    Ok(piece)
}

/// Given the length bytes of a frame header and the compressed bytes, returns the frame
/// crc and the crc32 state of the whole frame as it lies in the file (lengths, crc,
/// compressed bytes), reading the compressed bytes once.
fn frame_crcs(lens: &[u8], data: &[u8]) -> (u32, Hasher) {
    let mut head = Hasher::new();
    head.update(lens);
    let mut body = Hasher::new();
    body.update(data);
    let mut whole = head.clone();
    whole.combine(&body);
    let crc = whole.finalize();
    let mut piece = head;
    piece.update(&crc.to_le_bytes());
    piece.combine(&body);
    (crc, piece)
}

/// Verifies frame `frame`'s crc. Returns the crc32 state of the whole frame's bytes.
pub(crate) fn check_frame_crc(file: &[u8], frame: &FrameRef, path: &Path) -> Result<Hasher> {
    // `parse_frame_header` checked that the frame lies inside `file`.
    let start = frame.offset as usize;
    let lens = &file[start..start + FRAME_CRC_PREFIX];
    let data = &file[start + FRAME_HEADER_LEN..frame.end() as usize];
    let (crc, piece) = frame_crcs(lens, data);
    if crc != frame.crc {
        return Err(StorageError::corrupt(
            "snapshot frame",
            path,
            frame.offset,
            format!(
                "frame {} checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                frame.index, frame.crc
            ),
        ));
    }
    Ok(piece)
}

/// Checks the zstd frame header of `frame` without decompressing: it must be one zstd
/// frame of exactly `clen` bytes declaring exactly `ulen` content bytes.
pub(crate) fn check_zstd_structure(file: &[u8], frame: &FrameRef, path: &Path) -> Result<()> {
    let data = &file[frame.data_offset() as usize..frame.end() as usize];
    let bad = |detail: String| {
        StorageError::corrupt("snapshot zstd frame", path, frame.data_offset(), detail)
    };
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n == u64::from(frame.ulen) => {}
        Ok(Some(n)) => {
            return Err(bad(format!(
                "frame {} declares {n} content bytes, its header says {}",
                frame.index, frame.ulen
            )));
        }
        Ok(None) => {
            return Err(bad(format!(
                "frame {} does not declare its content size",
                frame.index
            )));
        }
        Err(_) => return Err(bad(format!("frame {} is not a zstd frame", frame.index))),
    }
    match zstd::zstd_safe::find_frame_compressed_size(data) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => Err(bad(format!(
            "frame {} holds a {n}-byte zstd frame, its header says {}",
            frame.index,
            data.len()
        ))),
        Err(code) => Err(bad(format!(
            "frame {}: {}",
            frame.index,
            zstd::zstd_safe::get_error_name(code)
        ))),
    }
}

/// Verifies frame `frame`'s crc, then decompresses it into `out`, replacing its contents
/// (written straight into its capacity, which grows to the frame's uncompressed length:
/// no zero fill first). Returns the crc32 state of the whole frame's bytes.
pub(crate) fn decode_frame(
    dctx: &mut zstd::bulk::Decompressor<'static>,
    file: &[u8],
    frame: &FrameRef,
    out: &mut Vec<u8>,
    path: &Path,
) -> Result<Hasher> {
    let piece = check_frame_crc(file, frame, path)?;
    let data = &file[frame.data_offset() as usize..frame.end() as usize];
    let ulen = frame.ulen as usize;
    out.clear();
    out.reserve_exact(ulen);
    let n = dctx.decompress_to_buffer(data, out).map_err(|e| {
        StorageError::corrupt(
            "snapshot zstd frame",
            path,
            frame.data_offset(),
            format!("frame {} does not decompress: {e}", frame.index),
        )
    })?;
    if n != ulen {
        return Err(StorageError::corrupt(
            "snapshot zstd frame",
            path,
            frame.data_offset(),
            format!(
                "frame {} decompressed to {n} bytes, its header says {ulen}",
                frame.index
            ),
        ));
    }
    Ok(piece)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::format::{Header, parse_frame_header};
    use crate::types::SnapshotMeta;

    fn one_frame_file(src: &[u8]) -> (Vec<u8>, Header) {
        let mut cctx = zstd::bulk::Compressor::new(3).expect("cctx");
        let mut out = Vec::new();
        compress_frame(&mut cctx, src, &mut out, Path::new("f")).expect("compress");
        let header = Header {
            meta: SnapshotMeta { index: 1, term: 1 },
            zstd_level: 3,
            frame_bytes: 4096,
            payload_len: src.len() as u64,
            stored_len: out.len() as u64,
            frame_count: 1,
            body_crc: 0,
        };
        let mut file = vec![0u8; format::HEADER_LEN];
        file.extend_from_slice(&out);
        (file, header)
    }

    #[test]
    fn frame_round_trips_and_every_byte_flip_is_caught() {
        let src: Vec<u8> = (0..4000u32)
            .map(|i| (i % 251) as u8 ^ (i / 97) as u8)
            .collect();
        let (file, header) = one_frame_file(&src);
        let p = Path::new("f");
        let mut dctx = zstd::bulk::Decompressor::new().expect("dctx");
        let fr = parse_frame_header(&file, &header, 0, format::HEADER_LEN as u64, p).expect("hdr");
        check_zstd_structure(&file, &fr, p).expect("zstd structure");
        let mut out = Vec::new();
        decode_frame(&mut dctx, &file, &fr, &mut out, p).expect("decode");
        assert_eq!(out, src);
        for pos in format::HEADER_LEN..file.len() {
            let mut bad = file.clone();
            bad[pos] ^= 0x10;
            let r = parse_frame_header(&bad, &header, 0, format::HEADER_LEN as u64, p)
                .and_then(|fr| decode_frame(&mut dctx, &bad, &fr, &mut out, p));
            assert!(r.is_err(), "flip at {pos} not detected");
        }
    }

    #[test]
    fn valid_crc_over_garbage_is_a_zstd_error_not_a_panic() {
        let p = Path::new("f");
        let mut dctx = zstd::bulk::Decompressor::new().expect("dctx");
        let mut x: u32 = 12345;
        for len in [1usize, 5, 13, 100, 4000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let lens = format::encode_frame_header(4096, len as u32, 0);
            let (crc, _) = frame_crcs(&lens[..FRAME_CRC_PREFIX], &data);
            let mut file = vec![0u8; format::HEADER_LEN];
            file.extend_from_slice(&format::encode_frame_header(4096, len as u32, crc));
            file.extend_from_slice(&data);
            let header = Header {
                meta: SnapshotMeta::default(),
                zstd_level: 1,
                frame_bytes: 4096,
                payload_len: 4096,
                stored_len: (file.len() - format::HEADER_LEN) as u64,
                frame_count: 1,
                body_crc: 0,
            };
            let fr = parse_frame_header(&file, &header, 0, format::HEADER_LEN as u64, p)
                .expect("lengths are in range");
            let mut out = Vec::new();
            assert!(check_zstd_structure(&file, &fr, p).is_err());
            let e = decode_frame(&mut dctx, &file, &fr, &mut out, p).expect_err("garbage");
            assert!(e.to_string().contains("zstd frame"), "{e}");
            assert!(out.len() <= 4096);
        }
    }
}
