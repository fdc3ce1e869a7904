//! The writing half of a connection: gathers what is ready (acknowledgements, then the
//! first lane, then the queue) into one buffer and writes it at once.

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Disconnect, DisconnectReasonCode, Packet, PingReq, PubAck, PubAckReason, Publish,
    Subscribe,
};
use rumqttc::v5::mqttbytes::QoS as WireQoS;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::handshake::WriteHalf;
use super::{reader, Control, Outcome, Request, Session};
use crate::transport::{Outgoing, QoS};

/// Stop gathering once a batch is this large.
const BATCH: usize = 64 * 1024;

/// QoS 1 messages we keep in flight towards the broker at most: the production
/// configuration's `max_inflight_messages` (the broker may ask for fewer).
const SEND_MAXIMUM: usize = 1000;

/// One connection's writing state.
pub(super) struct Wire {
    write: WriteHalf,
    buf: BytesMut,
    /// The in-flight window: ours, bounded by the broker's receive maximum.
    window: usize,
    /// The largest packet the broker accepts.
    max_packet: Option<u32>,
    keep_alive: Duration,
    last_write: Instant,
    ping_sent: Option<Instant>,
}

impl Wire {
    pub(super) fn new(write: WriteHalf, connack: &ConnAck, keep_alive: Duration) -> Self {
        let props = connack.properties.as_ref();
        let window = props
            .and_then(|p| p.receive_max)
            .map_or(SEND_MAXIMUM, |m| usize::from(m).clamp(1, SEND_MAXIMUM));
        Self {
            write,
            buf: BytesMut::with_capacity(BATCH),
            window,
            max_packet: props.and_then(|p| p.max_packet_size),
            keep_alive,
            last_write: Instant::now(),
            ping_sent: None,
        }
    }

    fn encode(&mut self, packet: &Packet) -> bool {
        match packet.write(&mut self.buf, self.max_packet) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("a message was not sent: {e}");
                false
            }
        }
    }

    /// Writes the buffer; an error or a broker that reads nothing for long ends the
    /// connection.
    async fn flush(&mut self) -> Result<(), String> {
        let stall = (self.keep_alive * 2).max(Duration::from_secs(30));
        let write = async {
            self.write.write_all(&self.buf).await?;
            self.write.flush().await
        };
        match tokio::time::timeout(stall, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("the broker read nothing for {}s", stall.as_secs())),
        }
        self.last_write = Instant::now();
        self.buf.clear();
        if self.buf.capacity() > 4 * BATCH {
            self.buf = BytesMut::with_capacity(BATCH);
        }
        Ok(())
    }
}

fn wire_qos(q: QoS) -> WireQoS {
    match q {
        QoS::AtMostOnce => WireQoS::AtMostOnce,
        QoS::AtLeastOnce => WireQoS::AtLeastOnce,
    }
}

impl Session {
    /// Writes until the connection ends.
    pub(super) async fn pump(
        &mut self,
        wire: &mut Wire,
        reader: &mut JoinHandle<reader::Ended>,
    ) -> Outcome {
        if !self.filters.is_empty() {
            let pkid = self.next_id();
            let subscribe = Subscribe::new_many(self.filters.clone(), None);
            let subscribe = Subscribe { pkid, ..subscribe };
            wire.encode(&Packet::Subscribe(subscribe));
        }
        // What a broken connection left unacknowledged goes first: `gather` sends it.
        // Once the application asked to disconnect: when DISCONNECT goes out even if what
        // is queued has not (a broker that acknowledges nothing, a queue that cannot drain).
        let mut stop_by: Option<Instant> = None;
        loop {
            let gathered = self.gather(wire);
            if !wire.buf.is_empty() {
                if let Err(e) = wire.flush().await {
                    return Outcome::Lost(e.into());
                }
                self.backlog.wrote();
                self.backlog.wake_if_room();
                if gathered == Gathered::Disconnect {
                    return Outcome::Disconnected;
                }
                continue;
            }
            let may_take = self.blocked.is_empty() && self.resend.is_empty();
            let may_take_first = self.blocked.len() < super::FIRST_QUEUE;
            let stopping = stop_by.is_some();
            let stop_at = stop_by.unwrap_or_else(|| Instant::now() + wire.keep_alive);
            let ping_at = match wire.ping_sent {
                Some(sent) => sent + wire.keep_alive,
                None => wire.last_write + wire.keep_alive,
            };
            tokio::select! {
                Some(c) = self.control.recv() => self.on_control(wire, c),
                Some(m) = self.first.recv(), if may_take_first => self.on_publish(wire, m),
                () = super::asked_to_stop(&mut self.shutdown), if !stopping => {
                    stop_by = Some(Instant::now() + super::STOP_GRACE);
                }
                _ = tokio::time::sleep_until(stop_at), if stopping => {
                    tracing::warn!("disconnecting with messages still queued: the broker did not take them in time");
                    wire.encode(&disconnect());
                    return match tokio::time::timeout(Duration::from_secs(1), wire.flush()).await {
                        Ok(Ok(())) => Outcome::Disconnected,
                        Ok(Err(e)) => Outcome::Lost(e.into()),
                        Err(_) => Outcome::Lost("the broker read nothing".into()),
                    };
                }
                r = self.out.recv(), if may_take && !self.out_closed => match r {
                    Some(Request::Publish(m)) => {
                        self.backlog.removed();
                        self.on_publish(wire, m);
                    }
                    Some(Request::Disconnect) => {
                        wire.encode(&disconnect());
                        return match wire.flush().await {
                            Ok(()) => Outcome::Disconnected,
                            Err(e) => Outcome::Lost(e.into()),
                        };
                    }
                    // The application dropped its publisher: reading goes on.
                    None => self.out_closed = true,
                },
                () = self.events.closed() => return Outcome::Gone,
                ended = &mut *reader => {
                    return Outcome::Lost(ended.unwrap_or_else(|e| e.to_string().into()));
                }
                _ = tokio::time::sleep_until(ping_at) => {
                    // An answer cannot be read while the reader is paused: then no verdict,
                    // but another PINGREQ, so the broker still hears from us in time.
                    if wire.ping_sent.is_some()
                        && !self.backlog.paused.load(std::sync::atomic::Ordering::Acquire)
                    {
                        return Outcome::Lost("no answer to PINGREQ".into());
                    }
                    wire.encode(&Packet::PingReq(PingReq));
                    wire.ping_sent = Some(Instant::now());
                }
            }
        }
    }

    /// Moves what is ready into the buffer, up to a batch.
    fn gather(&mut self, wire: &mut Wire) -> Gathered {
        while let Ok(c) = self.control.try_recv() {
            self.on_control(wire, c);
        }
        while self.inflight.len() < wire.window {
            let Some(p) = self.resend.pop_front() else {
                break;
            };
            if wire.encode(&Packet::Publish(p.clone())) {
                self.inflight.push_back(p);
            } else {
                self.ids.remove(p.pkid);
            }
        }
        while self.inflight.len() < wire.window {
            let Some(m) = self.blocked.pop_front() else {
                break;
            };
            self.on_publish(wire, m);
        }
        self.backlog
            .set_awaiting_acks(!self.blocked.is_empty() || !self.resend.is_empty());
        while wire.buf.len() < BATCH && self.blocked.len() < super::FIRST_QUEUE {
            match self.first.try_recv() {
                Ok(m) => self.on_publish(wire, m),
                Err(_) => break,
            }
        }
        while wire.buf.len() < BATCH
            && self.blocked.is_empty()
            && self.resend.is_empty()
            && !self.out_closed
        {
            match self.out.try_recv() {
                Ok(Request::Publish(m)) => {
                    self.backlog.removed();
                    self.on_publish(wire, m);
                }
                Ok(Request::Disconnect) => {
                    wire.encode(&disconnect());
                    return Gathered::Disconnect;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.out_closed = true,
            }
        }
        Gathered::Some
    }

    fn on_control(&mut self, wire: &mut Wire, c: Control) {
        match c {
            Control::Ack { generation, pkid } if generation == self.generation => {
                wire.encode(&Packet::PubAck(PubAck {
                    pkid,
                    reason: PubAckReason::Success,
                    properties: None,
                }));
            }
            Control::Acked { generation, pkid } if generation == self.generation => {
                if let Some(i) = self.inflight.iter().position(|p| p.pkid == pkid) {
                    self.inflight.remove(i);
                    self.ids.remove(pkid);
                }
            }
            Control::Pong { generation } if generation == self.generation => {
                wire.ping_sent = None;
            }
            _ => {} // from a broken connection
        }
    }

    /// Encodes a message, or holds a QoS 1 one while the in-flight window is full.
    fn on_publish(&mut self, wire: &mut Wire, m: Outgoing) {
        let qos = wire_qos(m.qos);
        if qos == WireQoS::AtLeastOnce && self.inflight.len() >= wire.window {
            self.blocked.push_back(m);
            self.backlog.set_awaiting_acks(true);
            return;
        }
        let mut p = Publish::new(m.topic, qos, m.payload, None);
        p.retain = m.retain;
        if qos == WireQoS::AtLeastOnce {
            p.pkid = self.next_id();
            if wire.encode(&Packet::Publish(p.clone())) {
                self.ids.insert(p.pkid);
                self.inflight.push_back(p);
            }
        } else {
            wire.encode(&Packet::Publish(p));
        }
    }

    /// The next packet id not in use by a message waiting for its acknowledgement (at most
    /// [`SEND_MAXIMUM`] of the 65,535 are, so the search ends).
    fn next_id(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.ids.contains(self.next_pkid) {
                return self.next_pkid;
            }
        }
    }
}

/// What a gathering turn found.
#[derive(Debug, PartialEq, Eq)]
enum Gathered {
    Some,
    /// A DISCONNECT is in the buffer: nothing may follow it.
    Disconnect,
}

fn disconnect() -> Packet {
    Packet::Disconnect(Disconnect {
        reason_code: DisconnectReasonCode::NormalDisconnection,
        properties: None,
    })
}

/// Which packet ids are in use: one bit for each of the 65,536.
pub(super) struct Ids(Box<[u64; 1024]>);

impl Default for Ids {
    fn default() -> Self {
        Self(Box::new([0; 1024]))
    }
}

impl Ids {
    fn contains(&self, id: u16) -> bool {
        self.0[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }

    fn insert(&mut self, id: u16) {
        self.0[usize::from(id / 64)] |= 1 << (id % 64);
    }

    fn remove(&mut self, id: u16) {
        self.0[usize::from(id / 64)] &= !(1 << (id % 64));
    }
}
