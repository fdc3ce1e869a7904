//! An in-memory message bus: for tests and single-process labs.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{
    BoxFuture, Event, Link, Outgoing, Publisher, SessionSpec, Subscription, Transport,
    TransportError,
};
use crate::topics::filter_matches;

/// A broker-less bus inside one process. Clones share the same bus.
///
/// Shared subscriptions (`$share/<group>/<filter>`) hand each message to one member of the
/// group, in turn. There are no persistent sessions: a client that is gone gets nothing.
///
/// Dropping a connection without [`Publisher::disconnect`] publishes its last will, as a
/// broker does when a client dies.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mqttcal_core::transport::{MemoryBus, Transport, SessionSpec, Subscription, QoS, Outgoing, Event};
/// let bus = MemoryBus::new();
/// let spec = |id: &str| SessionSpec::new(id, vec![Subscription::new("meas", QoS::AtLeastOnce)]);
/// let mut a = bus.connect(spec("a")).await.unwrap();
/// let b = bus.connect(spec("b")).await.unwrap();
/// b.publisher
///     .publish(Outgoing { topic: "meas".into(), payload: "{}".into(), qos: QoS::AtLeastOnce, retain: false })
///     .await
///     .unwrap();
/// assert!(matches!(a.events.recv().await, Some(Event::Message { .. })));
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    state: Arc<Mutex<BusState>>,
}

#[derive(Debug, Default)]
struct BusState {
    next_id: u64,
    clients: Vec<Client>,
    /// Which member of each shared subscription's group gets the next message.
    turn: u64,
}

/// `$share/<group>/<filter>` taken apart into its group and filter (MQTT 5, 4.8.2).
fn shared_filter(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix("$share/")?.split_once('/')
}

#[derive(Debug)]
struct Client {
    id: u64,
    filters: Vec<Subscription>,
    tx: mpsc::Sender<Event>,
}

impl MemoryBus {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// The receivers of `msg`: every client with a matching filter, and for each shared
    /// subscription (`$share/<group>/<filter>`) one of the group's members, in turn.
    fn route(&self, msg: &Outgoing, sender: u64) -> Vec<mpsc::Sender<Event>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(u64, mpsc::Sender<Event>)> = Vec::new();
        // (group, filter) -> the members whose filter matches.
        let mut groups: Vec<((&str, &str), Vec<&Client>)> = Vec::new();
        for c in &state.clients {
            let mut direct = false;
            for f in &c.filters {
                match shared_filter(&f.filter) {
                    Some(key) if filter_matches(key.1, &msg.topic) => {
                        match groups.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, members)) => members.push(c),
                            None => groups.push((key, vec![c])),
                        }
                    }
                    Some(_) => {}
                    None => {
                        direct |= filter_matches(&f.filter, &msg.topic)
                            && !(f.no_local && c.id == sender);
                    }
                }
            }
            if direct {
                out.push((c.id, c.tx.clone()));
            }
        }
        let turn = state.turn;
        for (_, members) in &groups {
            let chosen = members[(turn % members.len() as u64) as usize];
            if !out.iter().any(|(id, _)| *id == chosen.id) {
                out.push((chosen.id, chosen.tx.clone()));
            }
        }
        if !groups.is_empty() {
            state.turn = state.turn.wrapping_add(1);
        }
        out.into_iter().map(|(_, tx)| tx).collect()
    }

    /// Waits for room in each receiver's queue, as a broker's flow control would.
    async fn deliver(&self, msg: Outgoing, sender: u64) {
        for tx in self.route(&msg, sender) {
            let _ = tx
                .send(Event::Message {
                    topic: msg.topic.clone(),
                    payload: msg.payload.clone(),
                    ack: None,
                })
                .await;
        }
    }

    fn remove(&self, id: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.clients.retain(|c| c.id != id);
    }
}

impl Transport for MemoryBus {
    fn connect(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Link, TransportError>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(1024);
            let id = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.next_id += 1;
                let id = state.next_id;
                state.clients.push(Client {
                    id,
                    filters: spec.subscriptions,
                    tx,
                });
                id
            };
            Ok(Link {
                publisher: Arc::new(MemoryPublisher {
                    bus: self.clone(),
                    id,
                    will: Mutex::new(spec.will),
                }),
                events: super::Events::new(rx),
            })
        })
    }

    fn describe(&self) -> String {
        "in-memory bus".into()
    }
}

#[derive(Debug)]
struct MemoryPublisher {
    bus: MemoryBus,
    id: u64,
    will: Mutex<Option<Outgoing>>,
}

impl Publisher for MemoryPublisher {
    fn publish(&self, msg: Outgoing) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.bus.deliver(msg, self.id).await;
            Ok(())
        })
    }

    /// Delivery is done when `publish` returns: nothing is ever waiting.
    fn confirmed(&self) -> BoxFuture<'_, Result<Vec<super::Refused>, TransportError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        self.will.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.bus.remove(self.id);
        Box::pin(async { Ok(()) })
    }
}

impl Drop for MemoryPublisher {
    fn drop(&mut self) {
        self.bus.remove(self.id);
        let will = self.will.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(will) = will {
            for tx in self.bus.route(&will, self.id) {
                let _ = tx.try_send(Event::Message {
                    topic: will.topic.clone(),
                    payload: will.payload.clone(),
                    ack: None,
                });
            }
        }
    }
}
