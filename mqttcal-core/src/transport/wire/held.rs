//! Messages read ahead of a node that is behind.
//!
//! While the node works through a flood, the reader goes on reading into this queue (up
//! to a bound) instead of leaving the flood in the broker: so it sees, and hands over
//! first, the messages the node wants first (its `ping`), which would otherwise wait
//! behind the whole flood. Past the bound the reader stops reading, and TCP leaves the
//! rest at the broker.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::transport::{event_size as size, Event};

/// Messages held at most...
const HELD_MAX: usize = 16_384;
/// ...and their bytes at most (a message over it is still taken, alone).
const HELD_BYTES: usize = 8 << 20;

/// Events waiting for room in the node's channel, each with the packet id to acknowledge
/// once the node has it (QoS 1, automatic acknowledgements).
#[derive(Debug)]
pub(super) struct Held {
    queue: VecDeque<(Event, Option<u16>)>,
    bytes: usize,
}

impl Default for Held {
    /// Room for the most it may hold, reserved once: the pages are resident only once
    /// used, and the queue never reallocates (a doubling in a second flood, where the
    /// first stopped short of it, would grow the node by a megabyte and a half at once).
    /// An empty queue starts again at the ring's start (see `pop`).
    fn default() -> Self {
        Self {
            queue: VecDeque::with_capacity(HELD_MAX),
            bytes: 0,
        }
    }
}

/// Held events, shared by a session and its current reader: what a broken connection's
/// reader held still goes to the node.
pub(super) type SharedHeld = Arc<Mutex<Held>>;

/// Locks `held`; a reader that panicked leaves a consistent queue behind.
pub(super) fn lock(held: &SharedHeld) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(|e| e.into_inner())
}

impl Held {
    pub(super) fn push(&mut self, event: Event, ack: Option<u16>) {
        self.bytes += size(&event);
        self.queue.push_back((event, ack));
    }

    pub(super) fn pop(&mut self) -> Option<(Event, Option<u16>)> {
        let (event, ack) = self.queue.pop_front()?;
        self.bytes = self.bytes.saturating_sub(size(&event));
        if self.queue.is_empty() {
            // Back to the start of the ring: the next flood fills the pages this one
            // used rather than new ones further along.
            self.queue.clear();
        }
        Some((event, ack))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the reader must stop reading until the node takes some.
    pub(super) fn is_full(&self) -> bool {
        self.queue.len() >= HELD_MAX || self.bytes >= HELD_BYTES
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> Event {
        Event::Message {
            topic: "t".into(),
            payload: vec![0u8; bytes].into(),
            ack: None,
        }
    }

    #[test]
    fn the_queue_is_full_by_count_or_by_bytes_and_empties_in_order() {
        let mut held = Held::default();
        for _ in 0..HELD_MAX - 1 {
            held.push(message(0), None);
        }
        assert!(!held.is_full());
        held.push(message(0), Some(7));
        assert!(held.is_full());
        held.clear();
        assert!(held.is_empty() && !held.is_full());
        held.push(message(HELD_BYTES), Some(1));
        assert!(held.is_full(), "one big message fills it");
        held.push(message(1), Some(2));
        assert_eq!(held.pop().map(|(_, a)| a), Some(Some(1)));
        assert!(!held.is_full());
        assert_eq!(held.pop().map(|(_, a)| a), Some(Some(2)));
        assert!(held.pop().is_none());
        assert_eq!(held.bytes, 0);
    }
}
