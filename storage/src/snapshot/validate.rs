//! Whole-file validation: the structural check the store runs on open (no
//! decompression) and [`validate_file`], which also decompresses every frame.

use std::fs::File;
use std::io;
use std::path::Path;

use super::format::{HEADER_LEN, Header, OFF_BODY_CRC, parse_frame_header};
use super::frame::{check_frame_crc, check_zstd_structure};
use super::reader::SnapshotFileReader;
use super::store::SnapshotFileInfo;
use crate::error::StorageError;
use crate::file::mmap;
use crate::persister::Result;

/// Checks a snapshot file without decompressing it: header, every frame header's
/// lengths, every frame crc, every zstd frame header, the whole-file crc, and that the
/// frames end exactly at the end of the file. Returns the header.
pub(crate) fn check_structure(path: &Path) -> Result<Header> {
    let file = File::open(path).map_err(|e| StorageError::io("open snapshot", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io("stat snapshot", path, e))?
        .len();
    if len < HEADER_LEN as u64 {
        return Err(StorageError::corrupt(
            "snapshot header",
            path,
            0,
            format!("file is {len} bytes, shorter than the {HEADER_LEN}-byte header"),
        ));
    }
    let map = mmap::map_immutable(&file, path)?;
    let header = Header::decode(&map, len, path)?;
    let mut crc = header.body_crc_start();
    let mut offset = HEADER_LEN as u64;
    for index in 0..header.frame_count {
        let fr = parse_frame_header(&map, &header, index, offset, path)?;
        crc.combine(&check_frame_crc(&map, &fr, path)?);
        check_zstd_structure(&map, &fr, path)?;
        offset = fr.end();
    }
    if offset != len {
        return Err(StorageError::corrupt(
            "snapshot file",
            path,
            offset,
            format!("{} bytes after the last frame", len - offset),
        ));
    }
    let crc = crc.finalize();
    if crc != header.body_crc {
        return Err(StorageError::corrupt(
            "snapshot file",
            path,
            OFF_BODY_CRC as u64,
            format!(
                "file checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                header.body_crc
            ),
        ));
    }
    Ok(header)
}

/// Fully validates a snapshot file, for `raftkv inspect`: everything
/// [`SnapshotStore::open`](super::SnapshotStore::open) checks, then decompresses every
/// frame and checks its length. Errors are [`StorageError::Corrupt`] naming the file and
/// the offset of the bad field or frame (or [`StorageError::Io`] if it cannot be read).
pub fn validate_file(path: &Path) -> Result<SnapshotFileInfo> {
    let header = check_structure(path)?;
    let mut reader = SnapshotFileReader::open_with_threads(path, 1)?;
    let copied = io::copy(&mut reader, &mut io::sink()).map_err(|e| from_io(e, path))?;
    if copied != header.payload_len {
        return Err(StorageError::corrupt(
            "snapshot file",
            path,
            0,
            format!(
                "read {copied} payload bytes, the header says {}",
                header.payload_len
            ),
        ));
    }
    Ok(SnapshotFileInfo::from_header(&header, path.to_path_buf()))
}

/// Recovers the [`StorageError`] a reader wrapped in an `io::Error`.
pub(crate) fn from_io(e: io::Error, path: &Path) -> StorageError {
    if e.get_ref().is_some_and(|inner| inner.is::<StorageError>()) {
        let inner = e.into_inner().expect("checked above");
        match inner.downcast::<StorageError>() {
            Ok(se) => *se,
            Err(other) => StorageError::io("read snapshot", path, io::Error::other(other)),
        }
    } else {
        StorageError::io("read snapshot", path, e)
    }
}
