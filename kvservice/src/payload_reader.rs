//! [`PayloadReader`]: decodes a snapshot payload in place, piece by piece, so that keys
//! and values come out as slices of the pieces (no allocation or copy per key).
//!
//! The pieces come from a [`ChunkSource`]: a snapshot file hands over each decoded frame
//! itself, and any other stream is read [`CHUNK`] bytes at a time. A record that spans
//! two pieces is decoded from a small buffer of its start and the next piece's first
//! bytes; only a record longer than that (a large value) is gathered into one buffer.
//!
//! A key or value sliced out of a piece keeps that piece alive: after a restore, each
//! piece (about a megabyte) is freed once every key and value in it has been
//! overwritten or deleted. At worst that holds the restored payload's size in memory
//! besides the live data.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;

use raftkv_storage::{SnapshotReader, StorageError, codec};

/// Bytes read at a time from a plain stream.
pub(crate) const CHUNK: usize = 1 << 20;

/// Where a record across two pieces is first looked for: this many bytes of the next
/// piece, growing fourfold.
const ACROSS_FIRST: usize = 4096;

/// The payload's pieces, in order.
pub(crate) trait ChunkSource {
    /// The next piece (never empty), or `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError>;
}

impl<S: SnapshotReader + ?Sized> ChunkSource for &mut S {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        SnapshotReader::next_chunk(&mut **self)
    }
}

/// A plain stream, as pieces of [`CHUNK`] bytes.
pub(crate) struct ReadChunks<R>(pub(crate) R);

impl<R: Read> ChunkSource for ReadChunks<R> {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let mut chunk = Vec::with_capacity(CHUNK);
        let n = (&mut self.0)
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(|e| StorageError::io("read kv snapshot", "<snapshot stream>", e))?;
        Ok((n > 0).then_some(chunk))
    }
}

/// A snapshot payload being decoded.
///
/// Invariant: `pos <= chunk.len()`, and `chunk[pos..]` are the next unread payload bytes,
/// at payload offset `offset + pos`.
pub(crate) struct PayloadReader<S> {
    source: S,
    chunk: Bytes,
    pos: usize,
    offset: u64,
    eof: bool,
}

/// One attempt at decoding a record at the front of a buffer: the record and the bytes
/// it used, `None` if the buffer ends first, or an error for malformed bytes.
type Attempt<T> = Result<Option<(T, usize)>, StorageError>;

impl<S: ChunkSource> PayloadReader<S> {
    /// A reader of `source`, from its start.
    pub(crate) fn new(source: S) -> Self {
        Self {
            source,
            chunk: Bytes::new(),
            pos: 0,
            offset: 0,
            eof: false,
        }
    }

    /// The payload offset of the next unread byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset + self.pos as u64
    }

    /// Decodes the next value of type `T`; `what` names it in an error.
    pub(crate) fn decode<T: DeserializeOwned>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<T, StorageError> {
        self.next_record(what, |buf: &Bytes, at| {
            codec::decode_borrowed_prefix::<T>(&buf[at..])
        })
    }

    /// Decodes the next `(bytes, bytes, u64)` (a key record: key, value, version),
    /// the two byte strings as slices of the piece they are in.
    pub(crate) fn bytes_bytes_u64(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<(Bytes, Bytes, u64), StorageError> {
        self.next_record(what, |buf: &Bytes, at| {
            Ok(codec::decode_key_record_prefix(&buf[at..])?
                .map(|((a, b, n), used)| ((buf.slice_ref(a), buf.slice_ref(b), n), used)))
        })
    }

    /// Checks that the payload has nothing left.
    pub(crate) fn expect_end(&mut self, after: &str) -> Result<(), StorageError> {
        while self.pos == self.chunk.len() && !self.eof {
            self.next_piece()?;
        }
        if self.pos < self.chunk.len() {
            return Err(StorageError::Codec {
                op: "read kv snapshot",
                detail: format!(
                    "trailing bytes after the last {after} (at payload offset {})",
                    self.offset()
                ),
            });
        }
        Ok(())
    }

    /// Decodes one record with `attempt`, which is handed a buffer and the record's
    /// offset in it (the current piece and `pos`, in the common case).
    fn next_record<T>(
        &mut self,
        what: &dyn Fn() -> String,
        attempt: impl Fn(&Bytes, usize) -> Attempt<T>,
    ) -> Result<T, StorageError> {
        loop {
            match attempt(&self.chunk, self.pos).map_err(|e| self.error(what, &e))? {
                Some((value, used)) => {
                    self.pos += used;
                    return Ok(value);
                }
                None if self.eof => {
                    return Err(self.error(what, &"the payload ends inside it"));
                }
                None if self.pos == self.chunk.len() => self.next_piece()?,
                None => {
                    if let Some(value) = self.across(&attempt)? {
                        return Ok(value);
                    }
                }
            }
        }
    }

    /// Moves on to the next piece, the current one being used up.
    fn next_piece(&mut self) -> Result<(), StorageError> {
        debug_assert_eq!(self.pos, self.chunk.len());
        match self.source.next_chunk()? {
            Some(next) => {
                self.offset += self.chunk.len() as u64;
                self.chunk = Bytes::from(next);
                self.pos = 0;
            }
            None => self.eof = true,
        }
        Ok(())
    }

    /// The record at `pos` runs past the current piece: decodes it from its start and
    /// a growing prefix of the next piece, and goes on inside the next piece. If it is
    /// longer than all of that, leaves its start and the next piece joined as the
    /// current piece (without decoding it) and returns `None`.
    fn across<T>(
        &mut self,
        attempt: &impl Fn(&Bytes, usize) -> Attempt<T>,
    ) -> Result<Option<T>, StorageError> {
        let Some(next) = self.source.next_chunk()? else {
            self.eof = true;
            return Ok(None);
        };
        let tail = self.chunk.len() - self.pos;
        let mut take = ACROSS_FIRST.min(next.len());
        while take < next.len() {
            let mut joined = BytesMut::with_capacity(tail + take);
            joined.extend_from_slice(&self.chunk[self.pos..]);
            joined.extend_from_slice(&next[..take]);
            let joined = joined.freeze();
            match attempt(&joined, 0)? {
                Some((value, used)) => {
                    debug_assert!(used > tail, "a record decoded from its start alone");
                    self.offset += self.chunk.len() as u64;
                    self.chunk = Bytes::from(next);
                    self.pos = used - tail;
                    return Ok(Some(value));
                }
                None => take = take.saturating_mul(4),
            }
        }
        // Longer than the next piece: gather it in one buffer, growing it in place
        // while no record holds a slice of it.
        let mut joined = match std::mem::take(&mut self.chunk).try_into_mut() {
            Ok(mut own) if self.pos == 0 => {
                own.extend_from_slice(&next);
                own
            }
            Ok(own) => join(&own[self.pos..], &next),
            Err(shared) => join(&shared[self.pos..], &next),
        };
        self.offset += self.pos as u64;
        self.pos = 0;
        self.chunk = std::mem::take(&mut joined).freeze();
        Ok(None)
    }

    fn error(&self, what: &dyn Fn() -> String, e: &dyn std::fmt::Display) -> StorageError {
        StorageError::Codec {
            op: "read kv snapshot",
            detail: format!("{} at payload offset {}: {e}", what(), self.offset()),
        }
    }
}

fn join(a: &[u8], b: &[u8]) -> BytesMut {
    let mut joined = BytesMut::with_capacity((a.len() + b.len()).max(2 * a.len()));
    joined.extend_from_slice(a);
    joined.extend_from_slice(b);
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out the payload in pieces of `step` bytes, as a frame source does.
    struct Pieces<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl ChunkSource for Pieces<'_> {
        fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
            if self.data.is_empty() {
                return Ok(None);
            }
            let n = self.step.min(self.data.len());
            let (piece, rest) = self.data.split_at(n);
            self.data = rest;
            Ok(Some(piece.to_vec()))
        }
    }

    /// A reader that hands out at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    type Record = (Vec<u8>, Vec<u8>, u64);

    fn payload_of(records: &[Record]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (k, v, n) in records {
            codec::encode_into(
                &(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v), n),
                &mut payload,
            )
            .expect("encode");
        }
        codec::encode_into(&42u64, &mut payload).expect("encode");
        payload
    }

    fn read_all<S: ChunkSource>(mut r: PayloadReader<S>, records: &[Record], len: usize) {
        for (i, (k, v, n)) in records.iter().enumerate() {
            let got = r
                .bytes_bytes_u64(&|| format!("record {i}"))
                .expect("record");
            assert_eq!(
                (&got.0[..], &got.1[..], got.2),
                (&k[..], &v[..], *n),
                "record {i}"
            );
        }
        assert_eq!(r.decode::<u64>(&|| "tail".into()).expect("tail"), 42);
        r.expect_end("value").expect("end");
        assert_eq!(r.offset(), len as u64);
    }

    #[test]
    fn records_across_pieces_and_longer_than_several_pieces() {
        let big = vec![7u8; CHUNK * 3 + 5];
        let records: Vec<Record> = (0..3000u64)
            .map(|i| {
                let value = match i {
                    1234 => big.clone(),
                    2000 => vec![9u8; 70_000],
                    _ => vec![i as u8; (i % 700) as usize],
                };
                (format!("key{i:05}").into_bytes(), value, i * 1000)
            })
            .collect();
        let payload = payload_of(&records);
        for step in [payload.len(), CHUNK, 4096, 333, 1] {
            let pieces = Pieces {
                data: &payload,
                step,
            };
            read_all(PayloadReader::new(pieces), &records, payload.len());
        }
        for step in [payload.len(), 4096, 333] {
            let stream = ReadChunks(Trickle {
                data: &payload,
                step,
            });
            read_all(PayloadReader::new(stream), &records, payload.len());
        }
    }

    #[test]
    fn truncation_and_a_huge_length_are_errors_naming_the_place() {
        let payload = payload_of(&[(b"k".to_vec(), b"v".to_vec(), 1)]);
        for step in [1, 2, payload.len()] {
            let cut = Pieces {
                data: &payload[..payload.len() - 2],
                step,
            };
            let e = PayloadReader::new(cut)
                .bytes_bytes_u64(&|| "key record 0".into())
                .expect_err("cut");
            assert!(
                e.to_string().contains("key record 0 at payload offset 0"),
                "{e}"
            );
            assert!(e.to_string().contains("ends inside it"), "{e}");
        }
        // A key claiming u64::MAX bytes: an error, not an allocation.
        let mut huge = vec![253u8];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut r = PayloadReader::new(ReadChunks(huge.as_slice()));
        assert!(r.bytes_bytes_u64(&|| "key record 0".into()).is_err());
        let mut r = PayloadReader::new(ReadChunks(&b"xy"[..]));
        assert_eq!(r.decode::<u8>(&|| "byte".into()).expect("byte"), b'x');
        let e = r.expect_end("byte").expect_err("trailing");
        assert!(
            e.to_string()
                .contains("trailing bytes after the last byte (at payload offset 1)"),
            "{e}"
        );
    }

    #[test]
    fn a_failing_source_is_an_error() {
        struct Broken;
        impl ChunkSource for Broken {
            fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
                Err(StorageError::Codec {
                    op: "test",
                    detail: "the disk is gone".into(),
                })
            }
        }
        let e = PayloadReader::new(Broken)
            .decode::<u64>(&|| "the header".into())
            .expect_err("broken");
        assert!(e.to_string().contains("the disk is gone"), "{e}");
    }
}
