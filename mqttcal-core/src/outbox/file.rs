//! The outbox file: an append-only log of framed records after an 8-byte header
//! ([`MAGIC`], which names the format and its version).
//!
//! Each record is `length (u32 LE) | CRC-32 of the body (u32 LE) | body`, and a body is
//! one of:
//! - `M` message: id (u64 LE), QoS (0 or 1), retain (0 or 1), topic length (u16 LE),
//!   topic, payload;
//! - `C` confirmed: id (u64 LE); every message up to it reached the broker;
//! - `H` high-water: id (u64 LE); the last id given before the file was compacted;
//! - `L` last: laid out as `M`; the last message appended before the file was compacted
//!   (confirmed, so not kept: what tells the next run where this one ended);
//! - `E` ended: id (u64 LE); the run stopped cleanly, its `bye` confirmed by the broker, so
//!   no later run needs to close it.
//!
//! A record is written in one `write` call, so a killed process leaves whole records; a
//! torn tail (a machine that lost power mid-write: a record cut short, or zeros) fails its
//! length or CRC check and is cut off when the file is opened. A bad record with good data
//! after it is damage, not a torn tail: the file is refused, never cut, and so is a file
//! without the header (a path pointing at some other file).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::transport::{Outgoing, QoS};

/// The first bytes of every outbox file: the format and its version.
pub(crate) const MAGIC: &[u8; 8] = b"MQCOBX1\n";

/// The largest record body read back (a message is bounded by the node's size limit,
/// far below this).
const MAX_RECORD: usize = 256 << 20;

/// A message kept in the outbox, not yet confirmed by the broker.
#[derive(Debug, Clone)]
pub struct Kept {
    /// Its place in the outbox: ids grow by one per message, across runs.
    pub id: u64,
    /// The message, as it was published.
    pub message: Outgoing,
}

/// What an outbox file holds: see [`inspect`](super::inspect).
#[derive(Debug, Clone, Default)]
pub struct OutboxState {
    /// The last id given, `None` if no message ever went through this outbox. The number
    /// of messages it ever kept is `last_id + 1`.
    pub last_id: Option<u64>,
    /// Messages not confirmed, oldest first.
    pub kept: Vec<Kept>,
    /// The last message ever appended, kept or confirmed: where an earlier run ended.
    pub last_message: Option<Outgoing>,
    /// Bytes cut off a torn tail when the file was read.
    pub torn_bytes: u64,
}

/// The open outbox file.
#[derive(Debug)]
pub(crate) struct OutboxFile {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    sync: bool,
    /// The next id to give.
    next_id: u64,
    /// Messages not yet confirmed, oldest first.
    kept: std::collections::VecDeque<Kept>,
    /// The last message appended.
    last: Option<Outgoing>,
    /// Reused to frame records, and to build their bodies.
    buf: Vec<u8>,
    body: Vec<u8>,
}

/// Compacts the file once everything is confirmed and it is this large.
const COMPACT_IDLE: u64 = 1 << 20;
/// Rewrites the file with only what is kept once it is this large.
const COMPACT_BUSY: u64 = 64 << 20;

impl OutboxFile {
    /// Opens (creating) the file at `path`, cutting off a torn tail; what it keeps.
    pub(crate) fn open(path: &Path, sync: bool) -> std::io::Result<(Self, OutboxState)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        lock(&file)?;
        if file.metadata()?.len() == 0 {
            file.write_all(MAGIC)?;
            file.sync_all()?;
        }
        let (state, good) = read_records(&mut file).map_err(|e| in_file(path, e))?;
        if state.torn_bytes > 0 {
            tracing::warn!(
                outbox = %path.display(),
                "the outbox ended in a torn record ({} bytes, cut off): the process stopped mid-write",
                state.torn_bytes
            );
            file.set_len(good)?;
        }
        // A symbolic link is followed once, here: compaction replaces the file it points
        // at, beside it, and leaves the link as it is.
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut this = Self {
            path: real,
            file,
            len: good,
            sync,
            next_id: state.last_id.map_or(0, |i| i + 1),
            kept: state.kept.iter().cloned().collect(),
            last: state.last_message.clone(),
            buf: Vec::new(),
            body: Vec::new(),
        };
        this.compact_if_large()?;
        Ok((this, state))
    }

    /// The last id given, if any.
    pub(crate) fn last_id(&self) -> Option<u64> {
        self.next_id.checked_sub(1)
    }

    /// Messages kept, not yet confirmed.
    pub(crate) fn kept(&self) -> usize {
        self.kept.len()
    }

    /// The kept message `id`, if it is still kept.
    pub(crate) fn message(&self, id: u64) -> Option<Outgoing> {
        let i = self.kept.binary_search_by_key(&id, |k| k.id).ok()?;
        Some(self.kept[i].message.clone())
    }

    /// The ids of the messages kept, oldest first.
    pub(crate) fn kept_ids(&self) -> Vec<u64> {
        self.kept.iter().map(|k| k.id).collect()
    }

    /// Keeps `message` (durably, before it is sent); its id.
    pub(crate) fn append(&mut self, message: &Outgoing) -> std::io::Result<u64> {
        let id = self.next_id;
        self.write_message(b'M', id, message)?;
        self.next_id += 1;
        self.kept.push_back(Kept {
            id,
            message: message.clone(),
        });
        self.last = Some(message.clone());
        Ok(id)
    }

    /// Writes a record of kind `kind` (`M` or `L`) holding `message`.
    fn write_message(&mut self, kind: u8, id: u64, message: &Outgoing) -> std::io::Result<()> {
        let topic = message.topic.as_bytes();
        let topic_len = u16::try_from(topic.len())
            .map_err(|_| std::io::Error::other("a topic longer than 65,535 bytes"))?;
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        body.push(kind);
        body.extend_from_slice(&id.to_le_bytes());
        body.push(u8::from(message.qos == QoS::AtLeastOnce));
        body.push(u8::from(message.retain));
        body.extend_from_slice(&topic_len.to_le_bytes());
        body.extend_from_slice(topic);
        body.extend_from_slice(&message.payload);
        let written = self.write_record(&body);
        if body.capacity() <= 1 << 20 {
            self.body = body;
        }
        written
    }

    /// The run stopped cleanly and the broker confirmed its `bye`: the next run has no
    /// earlier run to close.
    pub(crate) fn ended(&mut self) -> std::io::Result<()> {
        if self.last.is_none() {
            return Ok(());
        }
        let mut body = Vec::with_capacity(9);
        body.push(b'E');
        body.extend_from_slice(&self.next_id.saturating_sub(1).to_le_bytes());
        self.write_record(&body)?;
        self.last = None;
        Ok(())
    }

    /// Every message up to `id` reached the broker: forget them.
    pub(crate) fn confirm(&mut self, id: u64) -> std::io::Result<()> {
        if self.kept.front().is_none_or(|k| k.id > id) {
            return Ok(());
        }
        while self.kept.front().is_some_and(|k| k.id <= id) {
            self.kept.pop_front();
        }
        let mut body = Vec::with_capacity(9);
        body.push(b'C');
        body.extend_from_slice(&id.to_le_bytes());
        self.write_record(&body)?;
        self.compact_if_large()
    }

    fn write_record(&mut self, body: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&n| n as usize <= MAX_RECORD)
            .ok_or_else(|| std::io::Error::other("a message too large for the outbox"))?;
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf
            .extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        self.buf.extend_from_slice(body);
        // One call: a killed process leaves the whole record or none of it.
        let mut written = self.file.write_all(&self.buf);
        if written.is_ok() && self.sync {
            written = self.file.sync_data();
        }
        if let Err(e) = written {
            // Whatever part went out is cut off again, so the next record starts clean and
            // no id is written twice.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Starts the file afresh with what is kept, once it has grown: at once when nothing
    /// is kept, only when large otherwise.
    fn compact_if_large(&mut self) -> std::io::Result<()> {
        let due = if self.kept.is_empty() {
            self.len >= COMPACT_IDLE
        } else {
            self.len >= COMPACT_BUSY
        };
        if !due {
            return Ok(());
        }
        let fresh = self.path.with_extension("compacting");
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&fresh)?;
        lock(&file)?;
        file.set_len(0)?;
        let old = std::mem::replace(&mut self.file, file);
        let kept: Vec<Kept> = self.kept.drain(..).collect();
        let next_id = self.next_id;
        self.len = 0;
        let written = (|| {
            self.file.write_all(MAGIC)?;
            self.len = MAGIC.len() as u64;
            let mut body = vec![b'H'];
            body.extend_from_slice(&next_id.saturating_sub(1).to_le_bytes());
            self.write_record(&body)?;
            if let Some(last) = self.last.clone() {
                self.write_message(b'L', next_id.saturating_sub(1), &last)?;
            }
            for k in &kept {
                self.next_id = k.id;
                self.append(&k.message)?;
            }
            self.next_id = next_id;
            self.file.sync_all()?;
            std::fs::rename(&fresh, &self.path)
        })();
        if let Err(e) = written {
            // The old file is still the outbox and holds everything: go on with it.
            self.file = old;
            self.len = self.file.seek(SeekFrom::End(0))?;
            self.next_id = next_id;
            self.kept = kept.into_iter().collect();
            let _ = std::fs::remove_file(&fresh);
            return Err(e);
        }
        // Renamed: the new file is the outbox from now on, whatever follows.
        if let Err(e) = sync_dir(&self.path) {
            tracing::warn!(
                outbox = %self.path.display(),
                "the compacted outbox may not survive a power cut: cannot sync its folder: {e}"
            );
        }
        Ok(())
    }
}

/// An error about the outbox at `path`, naming it.
fn in_file(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Holds `file` for this process alone: two nodes appending to one outbox would send each
/// other's messages.
fn lock(file: &File) -> std::io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "another process uses this outbox (each node needs a file of its own)",
        ),
        std::fs::TryLockError::Error(e) => e,
    })
}

/// Makes a rename durable: syncs the folder that holds `path`.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// Reads every whole record of `file`; what they say, and where the last whole one ends.
/// Refuses a file without the header, and one damaged before its tail.
pub(crate) fn read_records(file: &mut File) -> std::io::Result<(OutboxState, u64)> {
    let not_ours = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an mqttcal outbox (it does not start with the outbox header): give the outbox a file of its own",
        )
    };
    file.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).map_err(|_| not_ours())?;
    if &magic != MAGIC {
        return Err(not_ours());
    }
    let mut bytes = magic.to_vec();
    file.read_to_end(&mut bytes)?;
    let mut state = OutboxState::default();
    let mut kept = std::collections::VecDeque::new();
    let mut at = MAGIC.len();
    while let Some((body, next)) = record_at(&bytes, at) {
        apply(body, &mut state, &mut kept);
        at = next;
    }
    if !is_torn_tail(&bytes[at..]) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the outbox is damaged at byte {at} of {}, with records after the damage: it is left as it is; move it aside to start without it (the messages it keeps are in it)",
                bytes.len()
            ),
        ));
    }
    state.torn_bytes = (bytes.len() - at) as u64;
    state.kept = kept.into();
    Ok((state, at as u64))
}

/// Whether `rest`, what follows the last whole record, is what a write cut short leaves:
/// nothing, part of a header, zeros, or one record whose stated length reaches the end.
/// A record after that one (a damaged length, not a cut write) makes it damage.
fn is_torn_tail(rest: &[u8]) -> bool {
    if rest.len() < 8 || rest.iter().all(|&b| b == 0) {
        return true;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    (1..=MAX_RECORD).contains(&len) && 8 + len >= rest.len() && !has_record_after(rest)
}

/// Whether a whole, well-formed record starts anywhere in `rest` after its first byte.
/// Only offsets that look like a record (a possible length, a known kind laid out as that
/// kind is) are checked against their CRC, so a long torn tail costs a scan, not a CRC
/// per byte.
fn has_record_after(rest: &[u8]) -> bool {
    (1..rest.len().saturating_sub(8)).any(|at| {
        let Some((len, body)) = candidate_at(rest, at) else {
            return false;
        };
        let crc = u32::from_le_bytes([rest[at + 4], rest[at + 5], rest[at + 6], rest[at + 7]]);
        let shaped = match body[0] {
            b'C' | b'H' | b'E' => len == 9,
            b'M' | b'L' => {
                len >= 13
                    && body[9] <= 1
                    && body[10] <= 1
                    && usize::from(u16::from_le_bytes([body[11], body[12]])) <= len - 13
            }
            _ => false,
        };
        shaped && crc32fast::hash(body) == crc
    })
}

/// The stated length and the body of a record at `at`, if it fits in `bytes`.
fn candidate_at(bytes: &[u8], at: usize) -> Option<(usize, &[u8])> {
    let head = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    Some((len, bytes.get(at + 8..(at + 8).checked_add(len)?)?))
}

/// The body of the whole record at `at`, and where the next one starts.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let head = bytes.get(at..at.checked_add(8)?)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let body = bytes.get(at + 8..(at + 8).checked_add(len)?)?;
    (crc32fast::hash(body) == crc).then_some((body, at + 8 + len))
}

/// Applies one record body; an unknown or malformed one is skipped.
fn apply(body: &[u8], state: &mut OutboxState, kept: &mut std::collections::VecDeque<Kept>) {
    let id = || Some(u64::from_le_bytes(body.get(1..9)?.try_into().ok()?));
    let last_id = &mut state.last_id;
    match (body[0], id()) {
        (b'M', Some(id)) => {
            let Some(message) = message_of(body) else {
                return;
            };
            *last_id = Some(last_id.map_or(id, |l| l.max(id)));
            state.last_message = Some(message.clone());
            kept.push_back(Kept { id, message });
        }
        (b'L', Some(_)) => state.last_message = message_of(body).or(state.last_message.take()),
        (b'E', Some(_)) => state.last_message = None,
        (b'C', Some(id)) => {
            while kept.front().is_some_and(|k| k.id <= id) {
                kept.pop_front();
            }
        }
        (b'H', Some(id)) => *last_id = Some(last_id.map_or(id, |l| l.max(id))),
        _ => {}
    }
}

fn message_of(body: &[u8]) -> Option<Outgoing> {
    let qos = match body.get(9)? {
        0 => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    };
    let retain = *body.get(10)? != 0;
    let topic_len = usize::from(u16::from_le_bytes(body.get(11..13)?.try_into().ok()?));
    let topic = std::str::from_utf8(body.get(13..13 + topic_len)?).ok()?;
    Some(Outgoing {
        topic: topic.to_owned(),
        payload: Bytes::copy_from_slice(&body[13 + topic_len..]),
        qos,
        retain,
    })
}
