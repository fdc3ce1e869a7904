//! The writing side of a connection as the publishers and the reader see it.
//!
//! While the writer task has nothing to do, whoever has a message writes it at once, on
//! its own thread: one system call, no task to wake. On a two-core machine waking a parked
//! thread costs more than the write itself, and a request or a reply that waits for the
//! writer task costs one such wake-up at each end. Otherwise (the writer is busy, messages
//! wait for it, the connection is down, TLS) the message is queued for the writer task,
//! which batches. Nothing overtakes what is queued: a message goes straight out only when
//! nothing waits, and the writer gives the socket back only once its queues are empty.
//!
//! The state that both need lives here, under one lock: who has the socket, what waits,
//! our QoS 1 messages in flight and their packet ids, the keep-alive clock.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAck, PubAckReason, Publish};

use super::flight::Flight;
use rumqttc::v5::mqttbytes::QoS as WireQoS;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Backlog;
use crate::transport::{Outgoing, QoS};

/// The shared writing state of a session.
#[derive(Debug)]
pub(super) struct Outlet {
    state: Mutex<State>,
    /// Messages queued for the writer task (both lanes) and not yet taken by it. Raised
    /// under the lock, so that nothing is written directly past a queued message.
    queued: AtomicUsize,
    /// Wakes the writer task: a direct write left bytes unsent.
    pub(super) kick: Notify,
}

/// What [`Outlet`] guards.
#[derive(Debug)]
pub(super) struct State {
    /// The open connection's socket, for direct writes (plain TCP only).
    tcp: Option<Arc<OwnedWriteHalf>>,
    /// The current connection's generation: acknowledgements of an older one are void.
    pub(super) generation: u64,
    /// The writer task has the socket: it writes, or holds what it took from its queues.
    pub(super) busy: bool,
    /// A DISCONNECT is queued: nothing more goes out directly.
    pub(super) closing: bool,
    /// Bytes a direct write could not send at once: the writer sends them first.
    pub(super) leftover: BytesMut,
    /// Where direct writes are encoded.
    scratch: BytesMut,
    /// Our QoS 1 messages the broker has not acknowledged, and the confirmations waiting
    /// for them.
    pub(super) flight: Flight,
    /// The packet ids of the messages in `flight`.
    pub(super) ids: Ids,
    next_pkid: u16,
    /// The in-flight window: ours, bounded by the broker's receive maximum.
    pub(super) window: usize,
    /// The largest packet the broker accepts.
    pub(super) max_packet: Option<u32>,
    /// When the socket was last written, by anyone: the keep-alive counts from it.
    pub(super) last_write: Instant,
    /// The writer holds messages until the broker acknowledges some of ours: the reader
    /// wakes it at each acknowledgement.
    pub(super) waiting_for_acks: bool,
}

impl Default for Outlet {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                tcp: None,
                generation: 0,
                busy: true,
                closing: false,
                leftover: BytesMut::new(),
                scratch: BytesMut::with_capacity(1024),
                flight: Flight::default(),
                ids: Ids::default(),
                next_pkid: 0,
                window: 1,
                max_packet: None,
                last_write: Instant::now(),
                waiting_for_acks: false,
            }),
            queued: AtomicUsize::new(0),
            kick: Notify::new(),
        }
    }
}

/// Why a message could not be written directly; it must be queued (and is counted).
pub(super) struct Queue(pub(super) Outgoing);

impl Outlet {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `msg` now if nothing waits and the writer is idle; otherwise counts it as
    /// queued and gives it back, to be queued for the writer (or [`Outlet::uncount`]ed).
    pub(super) fn send_or_count(&self, msg: Outgoing, backlog: &Backlog) -> Result<(), Queue> {
        let mut st = self.lock();
        let qos1 = msg.qos == QoS::AtLeastOnce;
        if !st.may_write() || self.queued.load(Ordering::Acquire) != 0 {
            return Err(self.count(msg));
        }
        if qos1 && st.flight.len() >= st.window {
            return Err(self.count(msg));
        }
        let mut p = Publish::new(msg.topic, wire_qos(msg.qos), msg.payload, None);
        p.retain = msg.retain;
        if qos1 {
            p.pkid = st.next_id();
        }
        let st = &mut *st;
        st.scratch.clear();
        let packet = Packet::Publish(p);
        if let Err(e) = packet.write(&mut st.scratch, st.max_packet) {
            tracing::warn!("a message was not sent: {e}");
            st.scratch.clear();
            if let (true, Packet::Publish(p)) = (qos1, packet) {
                st.ids.remove(p.pkid);
                st.flight.unsendable(p, format!("not sent: {e}"));
            }
            return Ok(());
        }
        if let (true, Packet::Publish(p)) = (qos1, packet) {
            st.ids.insert(p.pkid);
            st.flight.sent(p);
        }
        st.write_scratch(backlog, &self.kick);
        Ok(())
    }

    fn count(&self, msg: Outgoing) -> Queue {
        self.queued.fetch_add(1, Ordering::AcqRel);
        Queue(msg)
    }

    /// Counts a queued request that is not a message (a DISCONNECT) and closes the direct
    /// path for good.
    pub(super) fn count_disconnect(&self) {
        let mut st = self.lock();
        st.closing = true;
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// A counted message was not queued after all.
    pub(super) fn uncount(&self) {
        self.taken();
    }

    /// The writer took a counted message from its queues.
    pub(super) fn taken(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Acknowledges received QoS 1 messages now, in one write, if the writer is idle and
    /// nothing waits for it; `false` if they must be queued for the writer (they are then
    /// counted as queued, so that later acknowledgements do not overtake them).
    pub(super) fn ack_now(&self, generation: u64, pkids: &[u16], backlog: &Backlog) -> bool {
        let mut st = self.lock();
        if st.generation != generation {
            // Void: the broker sends the messages again on the next connection.
            return true;
        }
        if !st.may_write() || self.queued.load(Ordering::Acquire) != 0 {
            self.queued.fetch_add(1, Ordering::AcqRel);
            return false;
        }
        let st = &mut *st;
        st.scratch.clear();
        for &pkid in pkids {
            let ack = Packet::PubAck(PubAck {
                pkid,
                reason: PubAckReason::Success,
                properties: None,
            });
            if ack.write(&mut st.scratch, None).is_err() {
                st.scratch.clear();
                self.queued.fetch_add(1, Ordering::AcqRel);
                return false;
            }
        }
        st.write_scratch(backlog, &self.kick);
        true
    }

    /// The broker acknowledged our message `pkid` (`refused`: with a reason code of 0x80
    /// or above); `true` if the writer waits for that.
    pub(super) fn acked(&self, generation: u64, pkid: u16, refused: Option<String>) -> bool {
        let mut st = self.lock();
        if st.generation != generation {
            return false;
        }
        if st.flight.acked(pkid, refused) {
            st.ids.remove(pkid);
        }
        st.waiting_for_acks
    }

    /// The writer takes the socket (and what a direct write left unsent, to send first).
    pub(super) fn take_socket(&self, buf: &mut BytesMut) {
        let mut st = self.lock();
        st.busy = true;
        if !st.leftover.is_empty() {
            let rest = st.leftover.split();
            let mut joined = BytesMut::with_capacity(rest.len() + buf.len());
            joined.extend_from_slice(&rest);
            joined.extend_from_slice(buf);
            *buf = joined;
        }
    }

    /// The writer gives the socket back if nothing waits for it; `false` if something does.
    pub(super) fn give_back(&self, writer_holds_more: bool) -> bool {
        let mut st = self.lock();
        if writer_holds_more || !st.leftover.is_empty() || self.queued.load(Ordering::Acquire) != 0
        {
            return false;
        }
        st.busy = false;
        true
    }

    /// A connection opened: direct writes go to `tcp` (when plain TCP), once the writer
    /// gives the socket back.
    pub(super) fn opened(
        &self,
        generation: u64,
        tcp: Option<Arc<OwnedWriteHalf>>,
        window: usize,
        max_packet: Option<u32>,
    ) {
        let mut st = self.lock();
        st.tcp = tcp;
        st.generation = generation;
        st.busy = true;
        st.window = window;
        st.max_packet = max_packet;
        st.leftover.clear();
        st.last_write = Instant::now();
    }

    /// The connection ended: nothing is written directly until the next one; our messages
    /// it had not acknowledged go again first.
    pub(super) fn closed(&self, generation: u64) {
        let mut st = self.lock();
        st.tcp = None;
        st.generation = generation;
        st.busy = true;
        st.leftover.clear();
        st.flight.broke();
    }

    /// A confirmation for every QoS 1 message written so far (the writer calls it on
    /// reaching it in the queue).
    pub(super) fn confirm(&self, tx: tokio::sync::oneshot::Sender<super::flight::Refusals>) {
        self.lock().flight.confirm(tx);
    }

    /// From now on refused messages are kept for a confirmation.
    pub(super) fn keep_refused(&self) {
        self.lock().flight.keep_refused();
    }

    /// Our QoS 1 messages refused since the session started.
    pub(super) fn refused(&self) -> u64 {
        self.lock().flight.refused_total()
    }
}

impl State {
    /// Whether a message may be written directly now (the queue aside).
    fn may_write(&self) -> bool {
        self.tcp.is_some() && !self.busy && !self.closing
    }

    /// The next packet id not in use by a message waiting for its acknowledgement (at most
    /// the window's 1,000 of the 65,535 are, so the search ends).
    pub(super) fn next_id(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.ids.contains(self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    /// Writes `scratch` without waiting; what the socket does not take is left for the
    /// writer task, which now has the socket.
    fn write_scratch(&mut self, backlog: &Backlog, kick: &Notify) {
        let Some(tcp) = self.tcp.clone() else {
            return;
        };
        let sent = match tcp.try_write(&self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(e) => {
                // The reader sees the broken connection too; QoS 1 messages go again on
                // the next one.
                tracing::debug!("a direct write failed: {e}");
                self.tcp = None;
                self.busy = true;
                return;
            }
        };
        if sent > 0 {
            self.last_write = Instant::now();
            backlog.wrote();
        }
        if sent < self.scratch.len() {
            self.leftover.extend_from_slice(&self.scratch[sent..]);
            self.busy = true;
            kick.notify_one();
        }
        self.scratch.clear();
        if self.scratch.capacity() > 64 * 1024 {
            self.scratch = BytesMut::with_capacity(1024);
        }
    }
}

pub(super) fn wire_qos(q: QoS) -> WireQoS {
    match q {
        QoS::AtMostOnce => WireQoS::AtMostOnce,
        QoS::AtLeastOnce => WireQoS::AtLeastOnce,
    }
}

/// Which packet ids are in use: one bit for each of the 65,536.
pub(super) struct Ids(Box<[u64; 1024]>);

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ids")
    }
}

impl Default for Ids {
    fn default() -> Self {
        Self(Box::new([0; 1024]))
    }
}

impl Ids {
    pub(super) fn contains(&self, id: u16) -> bool {
        self.0[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }

    pub(super) fn insert(&mut self, id: u16) {
        self.0[usize::from(id / 64)] |= 1 << (id % 64);
    }

    pub(super) fn remove(&mut self, id: u16) {
        self.0[usize::from(id / 64)] &= !(1 << (id % 64));
    }
}
