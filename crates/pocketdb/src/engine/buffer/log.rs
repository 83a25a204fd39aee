//! The buffer log's file format.
//!
//! A log is a sequence of frames, one per acknowledged append (an `insert_many` is one
//! frame, so it is replayed whole or not at all):
//!
//! ```text
//! len: u32 LE    length of the payload
//! crc: u32 LE    CRC-32 (IEEE) of the payload
//! payload:       one or more writes, each
//!                seq u64 LE | kind u8 | [expires i64 LE] | coll_len u16 LE | collection
//!                | key_len u32 LE | key | doc_len u32 LE | document JSON text (empty for
//!                deletes)
//! ```
//!
//! The kind's high bit says that an expiry follows it: when the document of a
//! collection with `expire_after` expires, in milliseconds since the Unix epoch, counted
//! from the write's acknowledgement. Logs written before the expiry was logged have no
//! such bit and read as writes without one.
//!
//! Frames are only appended. A crash can leave a torn last frame (short, or with a CRC
//! that does not match); reading stops there and the file is truncated to the last whole
//! frame, which never drops an acknowledged write: a write is acknowledged only after its
//! whole frame was handed to the OS (and synced, when the policy says so).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// What a buffered write does to its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// A new document (fails on apply only if a unique secondary index objects).
    Insert,
    /// The whole document after update operators.
    Update,
    /// The whole document after a replacement.
    Replace,
    /// The document is deleted.
    Delete,
}

impl OpKind {
    fn code(self) -> u8 {
        match self {
            OpKind::Insert => 1,
            OpKind::Update => 2,
            OpKind::Replace => 3,
            OpKind::Delete => 4,
        }
    }

    fn from_code(code: u8) -> Option<OpKind> {
        Some(match code {
            1 => OpKind::Insert,
            2 => OpKind::Update,
            3 => OpKind::Replace,
            4 => OpKind::Delete,
            _ => return None,
        })
    }
}

/// One buffered write.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// Position in the buffer: strictly increasing, never reused (the applied watermark
    /// is stored in the database).
    pub seq: u64,
    /// What the write does.
    pub kind: OpKind,
    /// The collection written.
    pub collection: Arc<str>,
    /// The canonical `_id` key ([`crate::id::id_key`]), shared with the overlay.
    pub key: Arc<str>,
    /// The document's JSON text after the write; `None` for deletes.
    pub doc: Option<Arc<str>>,
    /// When the document expires (ms since the Unix epoch) in a collection with
    /// `expire_after`, counted from the acknowledgement; logged with the write, so a
    /// write recovered after a crash keeps it.
    pub expires: Option<i64>,
}

const HEADER: usize = 8;

/// The bit of a write's kind byte saying that its expiry follows.
const EXPIRES_BIT: u8 = 0x80;

/// Appends the encoding of `op` to a frame's payload.
pub(crate) fn encode_op(op: &Op, payload: &mut Vec<u8>) {
    let doc = op.doc.as_deref().unwrap_or("");
    payload.extend_from_slice(&op.seq.to_le_bytes());
    match op.expires {
        Some(at) => {
            payload.push(op.kind.code() | EXPIRES_BIT);
            payload.extend_from_slice(&at.to_le_bytes());
        }
        None => payload.push(op.kind.code()),
    }
    payload.extend_from_slice(&(op.collection.len() as u16).to_le_bytes());
    payload.extend_from_slice(op.collection.as_bytes());
    payload.extend_from_slice(&(op.key.len() as u32).to_le_bytes());
    payload.extend_from_slice(op.key.as_bytes());
    payload.extend_from_slice(&(doc.len() as u32).to_le_bytes());
    payload.extend_from_slice(doc.as_bytes());
}

/// Frames a payload: length, CRC, payload.
#[cfg(test)]
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = begin_frame(Vec::with_capacity(HEADER + payload.len()));
    out.extend_from_slice(payload);
    finish_frame(&mut out);
    out
}

/// Clears `buf` and reserves room for a frame header; the payload is appended after it
/// and [`finish_frame`] fills the header in, so a frame is built without copying.
pub(crate) fn begin_frame(mut buf: Vec<u8>) -> Vec<u8> {
    buf.clear();
    buf.extend_from_slice(&[0; HEADER]);
    buf
}

/// Writes the header of a frame begun with [`begin_frame`]. False when the payload is
/// too large for one frame (its length must fit in a `u32`).
pub(crate) fn finish_frame(frame: &mut [u8]) -> bool {
    let Some(payload) = frame.get(HEADER..) else {
        return false;
    };
    let Ok(len) = u32::try_from(payload.len()) else {
        return false;
    };
    let crc = crc32fast::hash(payload);
    frame[0..4].copy_from_slice(&len.to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    true
}

/// Length of the header [`begin_frame`] reserves.
pub(crate) const fn header_len() -> usize {
    HEADER
}

/// Decodes the frames of `bytes`. Returns their writes and the length of the valid
/// prefix (shorter than `bytes` when the tail is torn or corrupt).
pub(crate) fn decode_all(bytes: &[u8]) -> (Vec<Op>, usize) {
    let mut ops = Vec::new();
    let mut pos = 0;
    while let Some((frame_ops, next)) = decode_frame(bytes, pos) {
        ops.extend(frame_ops);
        pos = next;
    }
    (ops, pos)
}

fn decode_frame(bytes: &[u8], pos: usize) -> Option<(Vec<Op>, usize)> {
    let header = bytes.get(pos..pos + HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let payload = bytes.get(pos + HEADER..(pos + HEADER).checked_add(len)?)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut r = Reader { bytes: payload };
    let mut ops = Vec::new();
    while !r.bytes.is_empty() {
        ops.push(decode_op(&mut r)?);
    }
    Some((ops, pos + HEADER + len))
}

fn decode_op(r: &mut Reader<'_>) -> Option<Op> {
    let seq = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let code = r.take(1)?[0];
    let kind = OpKind::from_code(code & !EXPIRES_BIT)?;
    let expires = if code & EXPIRES_BIT != 0 {
        Some(i64::from_le_bytes(r.take(8)?.try_into().ok()?))
    } else {
        None
    };
    let coll_len = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
    let collection = std::str::from_utf8(r.take(coll_len)?).ok()?;
    let key_len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
    let key = Arc::from(std::str::from_utf8(r.take(key_len)?).ok()?);
    let doc_len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
    let doc = std::str::from_utf8(r.take(doc_len)?).ok()?;
    let doc = (kind != OpKind::Delete).then(|| Arc::from(doc));
    Some(Op {
        seq,
        kind,
        collection: Arc::from(collection),
        key,
        doc,
        expires,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
}

/// Opens (creating) a log file for appending.
pub(crate) fn open_append(path: &Path) -> Result<File> {
    Ok(OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?)
}

/// Reads the records of the log at `path` (none when it does not exist) and truncates a
/// torn tail.
pub(crate) fn read_log(path: &Path) -> Result<Vec<Op>> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (ops, valid) = decode_all(&bytes);
    if valid < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            dropped_bytes = bytes.len() - valid,
            "buffer log ends with a torn record; truncating it"
        );
        file.set_len(valid as u64)?;
        file.sync_all()?;
    }
    Ok(ops)
}

/// Writes `bytes` to the log in one call.
pub(crate) fn append(file: &File, bytes: &[u8]) -> Result<()> {
    let mut f = file;
    f.write_all(bytes)
        .map_err(|e| Error::Buffer(format!("cannot append to the buffer log: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(seq: u64, kind: OpKind, doc: Option<&str>) -> Op {
        Op {
            seq,
            kind,
            collection: Arc::from("users"),
            key: Arc::from(format!("\"k{seq}\"")),
            doc: doc.map(Arc::from),
            expires: None,
        }
    }

    #[test]
    fn frames_round_trip_and_torn_tails_are_cut() {
        let ops = [
            op(1, OpKind::Insert, Some(r#"{"_id":"k1","a":1}"#)),
            op(2, OpKind::Update, Some(r#"{"_id":"k1","a":2}"#)),
            op(3, OpKind::Delete, None),
            op(4, OpKind::Replace, Some("{}")),
        ];
        // Three frames: [1], [2, 3], [4].
        let mut bytes = Vec::new();
        for group in [&ops[0..1], &ops[1..3], &ops[3..4]] {
            let mut payload = Vec::new();
            for o in group {
                encode_op(o, &mut payload);
            }
            bytes.extend(frame(&payload));
        }
        let (back, valid) = decode_all(&bytes);
        assert_eq!(valid, bytes.len());
        assert_eq!(back.len(), 4);
        assert_eq!(back[1].doc.as_deref(), Some(r#"{"_id":"k1","a":2}"#));
        assert_eq!(back[2].kind, OpKind::Delete);
        assert!(back[2].doc.is_none());
        // Every truncation point keeps exactly the whole frames before it.
        for cut in 0..bytes.len() {
            let (some, valid) = decode_all(&bytes[..cut]);
            assert!(valid <= cut);
            assert!([0, 1, 3].contains(&some.len()), "{}", some.len());
            assert!(some.iter().zip(&back).all(|(a, b)| a.seq == b.seq));
        }
        // An expiry travels with its write; a write without one reads back without.
        let mut expiring = op(5, OpKind::Insert, Some(r#"{"_id":"k5"}"#));
        expiring.expires = Some(-1_700_000_000_123);
        let mut payload = Vec::new();
        encode_op(&expiring, &mut payload);
        encode_op(&op(6, OpKind::Delete, None), &mut payload);
        let (two, _) = decode_all(&frame(&payload));
        assert_eq!(two.len(), 2);
        assert_eq!(
            (two[0].kind, two[0].expires, two[0].doc.as_deref()),
            (
                OpKind::Insert,
                Some(-1_700_000_000_123),
                Some(r#"{"_id":"k5"}"#)
            )
        );
        assert_eq!((two[1].kind, two[1].expires), (OpKind::Delete, None));
        // A flipped bit stops decoding at that frame.
        let mut bad = bytes.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert_eq!(decode_all(&bad).0.len(), 3);
    }
}
