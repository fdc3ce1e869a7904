//! The writing half of a connection: gathers what is ready (acknowledgements, then the
//! first lane, then the queue) into one buffer and writes it at once. While it has nothing
//! to do it gives the socket back, and publishers write their messages themselves (see
//! `outlet`).

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Disconnect, DisconnectReasonCode, Packet, PingReq, PubAck, PubAckReason, Publish,
    Subscribe,
};
use rumqttc::v5::mqttbytes::QoS as WireQoS;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::handshake::WriteHalf;
use super::outlet::wire_qos;
use super::{reader, Control, Outcome, Request, Session};
use crate::transport::Outgoing;

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
    pub(super) window: usize,
    /// The largest packet the broker accepts.
    pub(super) max_packet: Option<u32>,
    keep_alive: Duration,
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
            ping_sent: None,
        }
    }

    /// The socket, for direct writes (plain TCP only).
    pub(super) fn tcp(&self) -> Option<std::sync::Arc<tokio::net::tcp::OwnedWriteHalf>> {
        self.write.tcp()
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
        match tokio::time::timeout(stall, self.write.write_all(&self.buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("the broker read nothing for {}s", stall.as_secs())),
        }
        self.buf.clear();
        if self.buf.capacity() > 4 * BATCH {
            self.buf = BytesMut::with_capacity(BATCH);
        }
        Ok(())
    }
}

/// What woke the writer while it waited.
enum Woken {
    Control(Control),
    First(Outgoing),
    Out(Option<Request>),
    /// The application asked to disconnect.
    Stop,
    /// The grace for what is queued has passed: DISCONNECT now.
    StopNow,
    /// The keep-alive is due.
    Ping,
    /// A direct write left bytes, or a reconnection needs the writer.
    Kick,
}

impl Session {
    /// Writes until the connection ends.
    pub(super) async fn pump(
        &mut self,
        wire: &mut Wire,
        reader: &mut JoinHandle<reader::Ended>,
    ) -> Outcome {
        if !self.filters.is_empty() {
            let pkid = self.outlet.lock().next_id();
            let subscribe = Subscribe::new_many(self.filters.clone(), None);
            let subscribe = Subscribe { pkid, ..subscribe };
            wire.encode(&Packet::Subscribe(subscribe));
        }
        // What a broken connection left unacknowledged goes first: `gather` sends it.
        // Once the application asked to disconnect: when DISCONNECT goes out even if what
        // is queued has not (a broker that acknowledges nothing, a queue that cannot drain).
        let mut stop_by: Option<Instant> = None;
        let mut woken: Option<Woken> = None;
        loop {
            // The socket is ours before anything is taken from the queues, so that no
            // direct write overtakes what was taken.
            self.outlet.take_socket(&mut wire.buf);
            if let Some(w) = woken.take() {
                match w {
                    Woken::Control(c) => self.on_control(wire, c),
                    Woken::First(m) => {
                        self.outlet.taken();
                        self.on_publish(wire, m);
                    }
                    Woken::Out(Some(Request::Publish(m))) => {
                        self.backlog.removed();
                        self.outlet.taken();
                        self.on_publish(wire, m);
                    }
                    Woken::Out(Some(Request::Confirm(tx))) => self.outlet.confirm(tx),
                    Woken::Out(Some(Request::Disconnect)) => {
                        self.outlet.taken();
                        wire.encode(&disconnect());
                        return match wire.flush().await {
                            Ok(()) => Outcome::Disconnected,
                            Err(e) => Outcome::Lost(e.into()),
                        };
                    }
                    // The application dropped its publisher: reading goes on.
                    Woken::Out(None) => self.out_closed = true,
                    Woken::Stop => stop_by = Some(Instant::now() + super::STOP_GRACE),
                    Woken::StopNow => {
                        tracing::warn!("disconnecting with messages still queued: the broker did not take them in time");
                        wire.encode(&disconnect());
                        return match tokio::time::timeout(Duration::from_secs(1), wire.flush())
                            .await
                        {
                            Ok(Ok(())) => Outcome::Disconnected,
                            Ok(Err(e)) => Outcome::Lost(e.into()),
                            Err(_) => Outcome::Lost("the broker read nothing".into()),
                        };
                    }
                    Woken::Ping => {
                        let last_write = self.outlet.lock().last_write;
                        if wire.ping_sent.is_some() {
                            // An answer cannot be read while the reader is paused: then no
                            // verdict, but another PINGREQ, so the broker still hears from
                            // us in time.
                            if !self
                                .backlog
                                .paused
                                .load(std::sync::atomic::Ordering::Acquire)
                            {
                                return Outcome::Lost("no answer to PINGREQ".into());
                            }
                            wire.encode(&Packet::PingReq(PingReq));
                            wire.ping_sent = Some(Instant::now());
                        } else if last_write + wire.keep_alive <= Instant::now() {
                            wire.encode(&Packet::PingReq(PingReq));
                            wire.ping_sent = Some(Instant::now());
                        }
                    }
                    Woken::Kick => {}
                }
            }
            let gathered = self.gather(wire);
            if !wire.buf.is_empty() {
                if let Err(e) = wire.flush().await {
                    return Outcome::Lost(e.into());
                }
                self.outlet.lock().last_write = Instant::now();
                self.backlog.wrote();
                self.backlog.wake_if_room();
                if gathered == Gathered::Disconnect {
                    return Outcome::Disconnected;
                }
                continue;
            }
            // Nothing to write: the socket goes back to the publishers unless something
            // waits for the writer.
            let resend = self.outlet.lock().flight.has_resend();
            let holds = !self.blocked.is_empty() || resend;
            self.outlet.give_back(holds);
            let may_take = self.blocked.is_empty() && !resend;
            let may_take_first = self.blocked.len() < super::FIRST_QUEUE;
            let stopping = stop_by.is_some();
            let stop_at = stop_by.unwrap_or_else(|| Instant::now() + wire.keep_alive);
            let ping_at = match wire.ping_sent {
                Some(sent) => sent + wire.keep_alive,
                None => self.outlet.lock().last_write + wire.keep_alive,
            };
            woken = Some(tokio::select! {
                Some(c) = self.control.recv() => Woken::Control(c),
                Some(m) = self.first.recv(), if may_take_first => Woken::First(m),
                () = super::asked_to_stop(&mut self.shutdown), if !stopping => Woken::Stop,
                _ = tokio::time::sleep_until(stop_at), if stopping => Woken::StopNow,
                r = self.out.recv(), if may_take && !self.out_closed => Woken::Out(r),
                () = self.events.closed() => return Outcome::Gone,
                ended = &mut *reader => {
                    return Outcome::Lost(ended.unwrap_or_else(|e| e.to_string().into()));
                }
                () = self.outlet.kick.notified() => Woken::Kick,
                _ = tokio::time::sleep_until(ping_at) => Woken::Ping,
            });
        }
    }

    /// Moves what is ready into the buffer, up to a batch.
    fn gather(&mut self, wire: &mut Wire) -> Gathered {
        while let Ok(c) = self.control.try_recv() {
            self.on_control(wire, c);
        }
        {
            let outlet = self.outlet.clone();
            let mut st = outlet.lock();
            while st.flight.len() < wire.window {
                let Some((n, p)) = st.flight.next_resend() else {
                    break;
                };
                let pkid = p.pkid;
                let packet = Packet::Publish(p);
                match (wire.encode(&packet), packet) {
                    (true, Packet::Publish(p)) => st.flight.sent_again((n, p)),
                    (false, Packet::Publish(p)) => {
                        st.ids.remove(pkid);
                        st.flight
                            .dropped((n, p), "not sent: larger than the broker takes".into());
                    }
                    _ => st.ids.remove(pkid),
                }
            }
        }
        while !self.blocked.is_empty() && self.outlet.lock().flight.len() < wire.window {
            let Some(m) = self.blocked.pop_front() else {
                break;
            };
            self.on_publish(wire, m);
        }
        let waiting = !self.blocked.is_empty() || self.outlet.lock().flight.has_resend();
        self.outlet.lock().waiting_for_acks = waiting;
        self.backlog.set_awaiting_acks(waiting);
        while wire.buf.len() < BATCH && self.blocked.len() < super::FIRST_QUEUE {
            match self.first.try_recv() {
                Ok(m) => {
                    self.outlet.taken();
                    self.on_publish(wire, m);
                }
                Err(_) => break,
            }
        }
        while wire.buf.len() < BATCH
            && self.blocked.is_empty()
            && !self.outlet.lock().flight.has_resend()
            && !self.out_closed
        {
            match self.out.try_recv() {
                Ok(Request::Publish(m)) => {
                    self.backlog.removed();
                    self.outlet.taken();
                    self.on_publish(wire, m);
                }
                Ok(Request::Confirm(tx)) => self.outlet.confirm(tx),
                Ok(Request::Disconnect) => {
                    self.outlet.taken();
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
                encode_ack(wire, pkid);
            }
            Control::Acks { generation, pkids } => {
                // Counted as queued by the reader, whatever their connection.
                self.outlet.taken();
                if generation == self.generation {
                    for pkid in pkids {
                        encode_ack(wire, pkid);
                    }
                }
            }
            Control::Pong { generation } if generation == self.generation => {
                wire.ping_sent = None;
            }
            // The window has room again (the reader removed the acknowledged message);
            // or a message from a broken connection.
            _ => {}
        }
    }

    /// Encodes a message, or holds a QoS 1 one while the in-flight window is full.
    fn on_publish(&mut self, wire: &mut Wire, m: Outgoing) {
        let qos = wire_qos(m.qos);
        let outlet = self.outlet.clone();
        let mut st = outlet.lock();
        if qos == WireQoS::AtLeastOnce && st.flight.len() >= wire.window {
            self.blocked.push_back(m);
            st.waiting_for_acks = true;
            drop(st);
            self.backlog.set_awaiting_acks(true);
            return;
        }
        let mut p = Publish::new(m.topic, qos, m.payload, None);
        p.retain = m.retain;
        if qos == WireQoS::AtLeastOnce {
            p.pkid = st.next_id();
            let packet = Packet::Publish(p);
            match (wire.encode(&packet), packet) {
                (true, Packet::Publish(p)) => {
                    st.ids.insert(p.pkid);
                    st.flight.sent(p);
                }
                (false, Packet::Publish(p)) => {
                    st.flight
                        .unsendable(p, "not sent: larger than the broker takes".into());
                }
                _ => {}
            }
        } else {
            wire.encode(&Packet::Publish(p));
        }
    }
}

fn encode_ack(wire: &mut Wire, pkid: u16) {
    wire.encode(&Packet::PubAck(PubAck {
        pkid,
        reason: PubAckReason::Success,
        properties: None,
    }));
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
