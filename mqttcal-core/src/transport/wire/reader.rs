//! The reading half of a connection: decodes packets, hands messages to the node, tells the
//! writer what it must answer (acknowledgements) or may forget (our acknowledged messages).
//!
//! When the node is behind (its channel is full, or its outgoing queue is long), messages
//! are held (see `held`) and reading goes on, so the messages the node wants first still
//! overtake the rest; once the held queue is full, reading stops and the broker keeps the
//! rest (its queue limits apply). The writer never waits for this task, so the node's
//! answers keep flowing meanwhile.

use std::sync::Arc;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS as WireQoS;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use super::handshake::ReadHalf;
use super::held::{self, SharedHeld};
use super::outlet::Outlet;
use super::{Backlog, Control, ReadySlot};
use crate::transport::{Ack, Budget, Direct, Event, Priority};

/// What the reader needs from its session.
pub(super) struct Reader {
    pub(super) read: ReadHalf,
    pub(super) buf: BytesMut,
    pub(super) events: mpsc::Sender<Event>,
    /// The messages that go first, and their channel.
    pub(super) first: Option<(Priority, mpsc::Sender<Event>)>,
    /// The messages taken as soon as they are read, while nothing waits for the node.
    pub(super) direct: Option<Direct>,
    /// Messages waiting for the node, in order.
    pub(super) held: SharedHeld,
    /// The bytes handed to the node and not yet taken.
    pub(super) budget: Arc<Budget>,
    pub(super) control: mpsc::UnboundedSender<Control>,
    pub(super) ready: ReadySlot,
    /// Still waiting for the SUBACK that completes the connection.
    pub(super) awaiting_suback: bool,
    pub(super) manual_acks: bool,
    pub(super) generation: u64,
    pub(super) current: Arc<std::sync::atomic::AtomicU64>,
    pub(super) max_incoming: u32,
    /// Messages held before the SUBACK at most: [`EARLY_MAX`] beside the receive maximum
    /// (a stored session's QoS 1 messages, which the broker sends first).
    pub(super) early_max: usize,
    pub(super) backlog: Arc<Backlog>,
    /// The writing side, to acknowledge without waking the writer.
    pub(super) outlet: Arc<Outlet>,
    /// Automatic acknowledgements not yet written.
    pub(super) acks: Vec<u16>,
    /// Set once our DISCONNECT is written: from then on messages are read and dropped.
    pub(super) closing: watch::Receiver<bool>,
    pub(super) url: String,
}

/// How a connection ended.
#[derive(Debug)]
pub(super) struct Ended {
    pub(super) reason: String,
    pub(super) by: EndedBy,
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndedBy {
    /// Another connection logged in with our client id (MQTT 5 reason 0x8E): most likely
    /// a second node of the same name.
    TakeOver,
    /// The broker closed it without saying why. Mosquitto 2.0 does so on a take-over too
    /// (it closes the socket before its DISCONNECT is out).
    Broker,
    /// Anything else: an I/O error, a bad packet, a missing ping answer.
    Other,
}

impl From<String> for Ended {
    fn from(reason: String) -> Self {
        Self {
            reason,
            by: EndedBy::Other,
        }
    }
}

impl From<&str> for Ended {
    fn from(reason: &str) -> Self {
        reason.to_owned().into()
    }
}

impl Reader {
    /// Reads until the connection ends; returns why.
    pub(super) async fn run(mut self) -> Ended {
        // Messages that arrive before the SUBACK (a stored session's), handed over after it.
        let mut early: Vec<(Event, Option<u16>)> = Vec::new();
        if !self.awaiting_suback {
            self.signal_ready(&mut early);
        }
        // Messages that may go to the node although its outgoing queue is long.
        let mut grant = 0usize;
        loop {
            loop {
                if let Some((pkid, reason, len)) = puback(&self.buf) {
                    let _ = self.buf.split_to(len);
                    self.acked(pkid, refusal(reason));
                    continue;
                }
                match Packet::read(&mut self.buf, Some(self.max_incoming)) {
                    Ok(packet) => {
                        if let Err(why) = self.handle(packet, &mut early) {
                            return why;
                        }
                    }
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => break,
                    Err(e) => return format!("bad packet from the broker: {e}").into(),
                }
            }
            if let Err(why) = self.forward(&mut grant) {
                return why;
            }
            self.flush_acks();
            let closing = *self.closing.borrow();
            let (waiting, full) = {
                let held = held::lock(&self.held);
                (!held.is_empty(), held.is_full())
            };
            let may_forward = grant > 0 || !self.backlog.is_over();
            let channel_full = self.budget.is_full();
            // Not reading: a missing ping answer proves nothing meanwhile.
            self.backlog.set_paused(full && !closing);
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                read = self.read.read_buf(&mut self.buf), if !full || closing => match read {
                    Ok(0) => {
                        return Ended {
                            reason: "the broker closed the connection".into(),
                            by: EndedBy::Broker,
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return e.to_string().into(),
                },
                permit = self.events.reserve(), if waiting && may_forward && !channel_full && !closing => match permit {
                    Ok(permit) => {
                        if let Some((event, ack)) = held::lock(&self.held).pop() {
                            self.budget.handed(&event);
                            permit.send(event);
                            push_ack(&mut self.acks, ack);
                            grant = grant.saturating_sub(1);
                        }
                    }
                    Err(_) => return "the node is gone".into(),
                },
                () = self.backlog.wait_for_room(), if waiting && !may_forward && !closing => {
                    grant = GRANT;
                }
                () = self.budget.wait_for_room(), if waiting && may_forward && channel_full && !closing => {}
                _ = self.closing.changed(), if !closing => {}
            }
        }
    }

    /// Hands held messages to the node while it has room (and, unless `grant` allows
    /// more, while its outgoing queue is short); once our DISCONNECT is out, drops them.
    fn forward(&mut self, grant: &mut usize) -> Result<(), Ended> {
        let mut held = held::lock(&self.held);
        if *self.closing.borrow() {
            held.clear();
            return Ok(());
        }
        while !held.is_empty() && (*grant > 0 || !self.backlog.is_over()) && !self.budget.is_full()
        {
            match self.events.try_reserve() {
                Ok(permit) => {
                    if let Some((event, ack)) = held.pop() {
                        self.budget.handed(&event);
                        permit.send(event);
                        push_ack(&mut self.acks, ack);
                        *grant = grant.saturating_sub(1);
                    }
                }
                Err(mpsc::error::TrySendError::Full(())) => break,
                Err(mpsc::error::TrySendError::Closed(())) => return Err("the node is gone".into()),
            }
        }
        Ok(())
    }

    fn handle(
        &mut self,
        packet: Packet,
        early: &mut Vec<(Event, Option<u16>)>,
    ) -> Result<(), Ended> {
        match packet {
            Packet::Publish(p) => {
                let (event, auto_ack) = self.message(p);
                if self.awaiting_suback {
                    if early.len() >= self.early_max {
                        return Err(format!(
                            "the broker sent over {} messages before acknowledging the subscriptions",
                            self.early_max
                        )
                        .into());
                    }
                    early.push((event, auto_ack));
                } else {
                    self.take(event, auto_ack)?;
                }
            }
            // Read by `puback` before the codec sees them.
            Packet::PubAck(ack) => self.acked(ack.pkid, None),
            Packet::PingResp(_) => {
                let _ = self.control.send(Control::Pong {
                    generation: self.generation,
                });
            }
            Packet::SubAck(ack) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                {
                    tracing::warn!(broker = %self.url, codes = ?ack.return_codes, "the broker refused a subscription");
                }
                if self.awaiting_suback {
                    self.awaiting_suback = false;
                    self.signal_ready(early);
                }
            }
            Packet::Disconnect(d) => {
                let reason = d
                    .properties
                    .and_then(|p| p.reason_string)
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                if d.reason_code == DisconnectReasonCode::SessionTakenOver {
                    return Err(Ended {
                        reason: "another connection logged in with this client id: a second node of the same name is running? Stop one of them, or give one another name (`--name`)".into(),
                        by: EndedBy::TakeOver,
                    });
                }
                return Err(format!(
                    "the broker closed the connection ({:?}{reason})",
                    d.reason_code
                )
                .into());
            }
            // QoS 2 is never subscribed or sent; the rest is for brokers.
            _ => {}
        }
        Ok(())
    }

    /// The event for a received message, with its acknowledgement: a manual one goes with
    /// the event, an automatic one (its packet id) is sent once the node has the message.
    fn message(&self, p: Publish) -> (Event, Option<u16>) {
        let mut ack = None;
        let mut auto_ack = None;
        if p.qos != WireQoS::AtMostOnce {
            let pkid = p.pkid;
            let generation = self.generation;
            if self.manual_acks {
                let control = self.control.clone();
                let current = self.current.clone();
                ack = Some(Ack::new(move || {
                    current.load(std::sync::atomic::Ordering::Acquire) == generation
                        && control.send(Control::Ack { generation, pkid }).is_ok()
                }));
            } else {
                auto_ack = Some(pkid);
            }
        }
        let event = Event::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload,
            ack,
        };
        (event, auto_ack)
    }

    /// The broker acknowledged our message `pkid`: its place in the window is free, and
    /// the writer is told if it waits for one.
    fn acked(&self, pkid: u16, refused: Option<String>) {
        if self.outlet.acked(self.generation, pkid, refused) {
            let _ = self.control.send(Control::Room);
        }
    }

    /// Writes the automatic acknowledgements of the messages handed over, in one write
    /// if the writer is idle, through the writer otherwise.
    fn flush_acks(&mut self) {
        write_acks(
            &self.outlet,
            &self.control,
            &self.backlog,
            self.generation,
            &mut self.acks,
        );
    }

    /// Takes a received message: one that goes first straight to the node if it has room,
    /// the others into the held queue, in order; once our DISCONNECT is out, drops it.
    fn take(&mut self, event: Event, mut ack: Option<u16>) -> Result<(), Ended> {
        if *self.closing.borrow() {
            return Ok(());
        }
        if let (
            Some(direct),
            Event::Message {
                topic,
                payload,
                ack: None,
            },
        ) = (&self.direct, &event)
        {
            // Nothing waits for the node: what is taken here overtakes only what the node
            // was already handed, and its automatic acknowledgement stays in order.
            if held::lock(&self.held).is_empty() {
                if ack.is_some() && self.buf.is_empty() {
                    // The last message read: acknowledged before it is taken, as a plain
                    // client does, so that the caller it wakes finds the socket free.
                    push_ack(&mut self.acks, ack);
                    write_acks(
                        &self.outlet,
                        &self.control,
                        &self.backlog,
                        self.generation,
                        &mut self.acks,
                    );
                    ack = None;
                }
                if direct.take(topic, payload) {
                    push_ack(&mut self.acks, ack);
                    return Ok(());
                }
            }
        }
        let mut event = event;
        // Only QoS 0 messages overtake: QoS 1 acknowledgements go in the order the messages
        // came (MQTT 5 §4.6), and a message that overtook would be acknowledged first.
        if let (
            Some((priority, first)),
            Event::Message {
                topic,
                payload,
                ack: None,
            },
            None,
        ) = (&self.first, &event, ack)
        {
            if priority.matches(topic, payload) {
                self.budget.handed(&event);
                match first.try_send(event) {
                    Ok(()) => {
                        push_ack(&mut self.acks, ack);
                        return Ok(());
                    }
                    // Many at once: they take their turn with the rest.
                    Err(mpsc::error::TrySendError::Full(back)) => {
                        self.budget.taken(&back);
                        event = back;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        return Err("the node is gone".into())
                    }
                }
            }
        }
        held::lock(&self.held).push(event, ack);
        Ok(())
    }

    /// The connection is complete: the first one resolves `connect`, later ones send
    /// [`Event::Ready`]; then what arrived early follows.
    fn signal_ready(&mut self, early: &mut Vec<(Event, Option<u16>)>) {
        let first = self.ready.lock().unwrap_or_else(|e| e.into_inner()).take();
        match first {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => held::lock(&self.held).push(Event::Ready { reconnected: true }, None),
        }
        for (event, auto_ack) in std::mem::take(early) {
            if self.take(event, auto_ack).is_err() {
                return;
            }
        }
    }
}

/// Writes the acknowledgements in `acks` (see `Reader::flush_acks`) and empties it.
fn write_acks(
    outlet: &Outlet,
    control: &mpsc::UnboundedSender<Control>,
    backlog: &Backlog,
    generation: u64,
    acks: &mut Vec<u16>,
) {
    if acks.is_empty() {
        return;
    }
    if !outlet.ack_now(generation, acks, backlog) {
        let pkids = std::mem::take(acks);
        if control.send(Control::Acks { generation, pkids }).is_err() {
            outlet.uncount();
        }
    }
    acks.clear();
}

/// Notes the automatic acknowledgement of a message handed over (QoS 1).
fn push_ack(acks: &mut Vec<u16>, pkid: Option<u16>) {
    if let Some(pkid) = pkid {
        acks.push(pkid);
    }
}

/// Messages held before the SUBACK at most, beyond the receive maximum: a stored session
/// sends up to the receive maximum of QoS 1 messages first, and QoS 0 ones are not counted
/// against it.
pub(super) const EARLY_MAX: usize = 4096;

/// Messages handed to the node after the writer has not moved for a while, before the
/// reader checks again (see `Backlog::wait_for_room`).
const GRANT: usize = 256;

/// How much the read buffer grows by when it runs short.
const READ_CHUNK: usize = 64 * 1024;

/// A whole PUBACK at the start of `buf`: its packet id, reason code and length. Read here,
/// not by the codec, which fails on a reason code it does not know and so would break the
/// connection over a refusal (Mosquitto answers 0x95, packet too large, which MQTT 5 lists
/// for DISCONNECT only); a broken connection would send the message again and again.
/// `None` when `buf` starts with something else, or not yet a whole PUBACK.
fn puback(buf: &[u8]) -> Option<(u16, u8, usize)> {
    if buf.first() != Some(&0x40) {
        return None;
    }
    let mut remaining = 0usize;
    let mut at = 1;
    loop {
        let byte = *buf.get(at)?;
        remaining |= usize::from(byte & 0x7f) << (7 * (at - 1));
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            // Malformed: the codec says so.
            return None;
        }
    }
    let len = at + remaining;
    if remaining < 2 || buf.len() < len {
        return None;
    }
    let pkid = u16::from_be_bytes([buf[at], buf[at + 1]]);
    let reason = if remaining > 2 { buf[at + 2] } else { 0 };
    Some((pkid, reason, len))
}

/// Why the broker refused a QoS 1 message, from its PUBACK's reason code; `None` when it
/// took it (0x00, or 0x10: no subscriber).
fn refusal(reason: u8) -> Option<String> {
    let why = match reason {
        0x00..=0x7f => return None,
        0x80 => "unspecified error",
        0x83 => "implementation specific error",
        0x87 => "not authorized",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x99 => "payload format invalid",
        _ => "unknown reason",
    };
    Some(format!("refused by the broker: {why} (0x{reason:02x})"))
}
