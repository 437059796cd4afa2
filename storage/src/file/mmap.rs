//! Read-only memory maps of immutable files: sealed log segments and published
//! snapshot files. The only module of the crate with `unsafe` code.
#![allow(
    unsafe_code,
    reason = "memmap2::Mmap::map is unsafe; the one call below states why it is sound here"
)]

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::StorageError;
use crate::persister::Result;

/// Maps `file` (opened from `path`) read-only.
///
/// Callers map only files that are never written again: sealed log segments (only the
/// active segment is appended to, and it is read with ordinary reads) and snapshot files
/// (published by rename after their last write and fsync, then only ever unlinked).
pub(crate) fn map_immutable(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes may change or disappear
    // underneath the returned `&[u8]` if the file is modified or truncated while mapped
    // (changing it breaks Rust's aliasing rules; truncating it raises SIGBUS on access).
    // This crate never writes to, or truncates, a file it maps: the callers above map only
    // sealed segments and published snapshots, which are immutable from then on, and
    // unlinking a mapped file leaves the mapping valid. The map is read-only (PROT_READ), so
    // nothing is ever written through it. Another process modifying the data directory is
    // outside the storage model (FORMAT.md, "Media and operating assumptions").
    let map = unsafe { Mmap::map(file) }.map_err(|e| StorageError::io("mmap", path, e))?;
    Ok(map)
}
