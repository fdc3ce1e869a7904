//! Starting a node or a client, and the handle to a running node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use super::builtin;
use super::peers::Peers;
use super::pending::Pending;
use super::serve::{announce_hello, will_payload, ServeLoop};
use super::shared::Shared;
use super::Node;
use crate::call_error::CallError;
use crate::clock::{Clock, Timestamp};
use crate::context::Context;
use crate::envelope::Envelope;
use crate::topics::{self, Topics};
use crate::transport::{
    Direct, Link, Outgoing, Priority, QoS, SessionSpec, Subscription, Transport, TransportError,
};

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The first connection failed.
    #[error(transparent)]
    Connect(#[from] TransportError),
    /// A message could not be sent.
    #[error("cannot announce the node")]
    Announce(#[source] CallError),
    /// The node's task ended abnormally (it panicked).
    #[error("the node's task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The node's outbox could not be opened, or the transport cannot confirm what the
    /// broker took.
    #[error("cannot use the outbox {path}: {problem}")]
    Outbox {
        /// The outbox file.
        path: std::path::PathBuf,
        /// What went wrong.
        problem: String,
    },
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    ctx: Context,
    task: JoinHandle<()>,
}

impl NodeHandle {
    /// A context to act as the node (send, request, publish).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Stops the node cleanly (cancel handlers, `bye`, disconnect) and waits for it.
    pub async fn stop(self) -> Result<(), RunError> {
        self.ctx.request_stop();
        self.wait().await
    }

    /// Waits until the node stops (by a `stop` message or request, or [`NodeHandle::stop`]).
    pub async fn wait(self) -> Result<(), RunError> {
        self.task.await.map_err(RunError::Task)
    }
}

/// The control topics, plus the node's extra topics. `reply` is "no local": a node's own
/// replies never come back to it (see the MQTT transport for why that matters).
/// Extra topics are "no local" unless the node hears its own publications there (the
/// runtime filters them too, for brokers that ignore the flag).
fn subscriptions(
    topics: &Topics,
    me: &str,
    control: QoS,
    extra: &[super::TopicSpec],
) -> Vec<Subscription> {
    let mut subs = Vec::new();
    for name in [topics::SYSTEM, topics::REQUEST] {
        for f in topics.filters(name, me) {
            subs.push(Subscription::new(f, control));
        }
    }
    for f in topics.filters(topics::REPLY, me) {
        subs.push(Subscription::new(f, control).no_local());
    }
    for t in extra {
        for full in topics.filters(&t.topic, me) {
            if !subs.iter().any(|s| s.filter == full) {
                let sub = Subscription::new(full, QoS::AtLeastOnce);
                subs.push(if t.hear_own { sub } else { sub.no_local() });
            }
        }
    }
    subs
}

/// The topics of `node`, checking that its name fits the layout.
pub(crate) fn topics_for(node: &Node) -> Result<Topics, RunError> {
    let topics = Topics::with_layout(&node.prefix, node.layout);
    if node.layout == crate::topics::Layout::Addressed && !topics::is_valid_name(&node.name) {
        return Err(RunError::Connect(TransportError::Config {
            problem: format!(
                "`{}` cannot name a node in the addressed layout: a name is a topic level (1 to 256 bytes, no `/`, `+`, `#`, `*` or control character)",
                node.name
            ),
            source: None,
        }));
    }
    Ok(topics)
}

/// The login of a connection in the addressed layout: the name its topics carry.
/// A node's `ping` requests overtake the others waiting for it: what `ping` measures is the
/// node, not the flood in front of it. `ping` takes no parameters, so its request is small:
/// the probe reads only small payloads that mention `"ping"` at all.
fn pings_first(topics: &Topics) -> Priority {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        request: Option<std::borrow::Cow<'a, str>>,
    }
    let topics = topics.clone();
    Priority::new(move |topic, payload| {
        const NEEDLE: &[u8] = b"\"ping\"";
        payload.len() <= PING_MAX
            && topics
                .parse(topic)
                .is_some_and(|t| t.name == topics::REQUEST)
            && memchr::memmem::find(payload, NEEDLE).is_some()
            && serde_json::from_slice::<Probe>(payload)
                .is_ok_and(|p| p.request.as_deref() == Some(builtin::PING))
    })
}

/// The largest `ping` request that goes first (larger ones take their turn).
const PING_MAX: usize = 2048;

fn login_for(topics: &Topics, name: &str) -> Option<String> {
    (topics.layout() == crate::topics::Layout::Addressed).then(|| name.to_owned())
}

/// Replies go to their callers straight from the connection's reading task: no hop through
/// the node's event loop, whose wake-up would cost a round trip as much as the broker does.
/// Anything else (a malformed reply, one whose sender the topic contradicts) takes the
/// event loop's path, which drops it and counts it.
fn replies_direct(
    topics: &Topics,
    name: &str,
    limit: usize,
    pending: &Arc<Pending>,
    peers: &Arc<Peers>,
) -> Direct {
    let topics = topics.clone();
    let name = name.to_owned();
    let pending = pending.clone();
    let peers = peers.clone();
    Direct::new(move |topic, payload| {
        let Some(t) = topics.parse(topic) else {
            return false;
        };
        if t.name != topics::REPLY {
            return false;
        }
        let Ok(env) = Envelope::decode(payload, limit) else {
            return false;
        };
        if env.to != name || !t.matches(&env.from, &env.to) {
            return false;
        }
        peers.note(&env.from, env.direct, None);
        pending.deliver(env);
        true
    })
}

fn shared_for(
    node: &Node,
    topics: Topics,
    link: &Link,
    epoch: u64,
    (pending, peers): (Arc<Pending>, Arc<Peers>),
    outbox: Option<Arc<crate::outbox::Outbox>>,
) -> Arc<Shared> {
    let (stop, _) = tokio::sync::watch::channel(false);
    let direct =
        topics.layout() == crate::topics::Layout::Shared && topics::is_valid_name(&node.name);
    Arc::new(Shared {
        name: node.name.clone(),
        topics,
        clock: Clock::new(),
        epoch,
        limit: node.limit,
        control_qos: node.control_qos,
        publisher: link.publisher.clone(),
        pending,
        peers,
        direct,
        seqs: Mutex::new(HashMap::new()),
        started: std::time::Instant::now(),
        stop,
        overflow: super::shared::Overflow::new(link.publisher.clone()),
        outbox,
    })
}

/// The `bye` that closes an earlier run of node `name` whose last data message was `last`
/// (its epoch, and its last `seq` on that topic): every message of that run up to it went
/// to the broker, or goes again now from the outbox, so a receiver that counts gaps
/// (datad) may close the run instead of leaving its tail unknown. `None` if `last` is not
/// this node's data message.
fn farewell(name: &str, topics: &Topics, last: &Outgoing) -> Option<Outgoing> {
    let sent = Envelope::decode(&last.payload, usize::MAX).ok()?;
    let (epoch, seq) = (sent.epoch?, sent.seq?);
    let topic = topics.parse(&last.topic)?.name;
    if sent.from != name {
        return None;
    }
    let mut bye = Envelope::new(name, "*");
    bye.message = Some("bye".into());
    bye.epoch = Some(epoch);
    bye.timestamp = Some(crate::clock::Clock::new().next());
    bye.fields
        .insert("seqs".into(), serde_json::json!({ topic: seq }));
    // Said by a later run: presence trackers (ctrld, logd) take no leaving from it.
    bye.fields.insert(
        crate::envelope::EARLIER_RUN.into(),
        serde_json::Value::Bool(true),
    );
    Some(Outgoing {
        topic: topics.outgoing(topics::ANNOUNCE, name, "*"),
        payload: bye.encode(usize::MAX).ok()?.into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    })
}

/// Checks that the transport can confirm what the broker took, and starts the task that
/// sends again what an earlier run kept and then confirms: the outbox, and that task.
async fn start_outbox(
    path: std::path::PathBuf,
    link: &Link,
    (outbox, farewell): (Arc<crate::outbox::Outbox>, Option<Outgoing>),
) -> Result<(Arc<crate::outbox::Outbox>, tokio::task::AbortHandle), RunError> {
    let failed = |problem: String| RunError::Outbox {
        path: path.clone(),
        problem,
    };
    if let Err(e) = link.publisher.confirmed().await {
        let _ = link.publisher.disconnect().await;
        return Err(failed(e.to_string()));
    }
    let confirming = tokio::spawn(outbox.clone().run(link.publisher.clone(), farewell));
    Ok((outbox, confirming.abort_handle()))
}

impl Node {
    /// Connects, subscribes, announces `hello` and serves until stopped.
    pub async fn run(self, transport: &dyn Transport) -> Result<(), RunError> {
        self.start(transport).await?.wait().await
    }

    /// Connects, subscribes, starts the intakes, announces `hello`, starts the background
    /// tasks, and serves in a task of its own.
    pub async fn start(mut self, transport: &dyn Transport) -> Result<NodeHandle, RunError> {
        let topics = topics_for(&self)?;
        let outbox = match &self.outbox {
            Some(cfg) => Some(
                crate::outbox::Outbox::open(cfg).map_err(|e| RunError::Outbox {
                    path: cfg.path.clone(),
                    problem: e.to_string(),
                })?,
            ),
            None => None,
        };
        // This run's epoch, in the will too.
        let epoch = Timestamp::now().as_micros();
        let will = Outgoing {
            topic: topics.outgoing(topics::ANNOUNCE, &self.name, "*"),
            payload: will_payload(&self.name, epoch).into(),
            qos: QoS::AtLeastOnce,
            retain: false,
        };
        let pending = Pending::start();
        let peers = Arc::new(Peers::default());
        let link = transport
            .connect(SessionSpec {
                will: Some(will),
                login: login_for(&topics, &self.name),
                priority: Some(pings_first(&topics)),
                direct: Some(replies_direct(
                    &topics, &self.name, self.limit, &pending, &peers,
                )),
                ..SessionSpec::new(
                    self.name.clone(),
                    subscriptions(&topics, &self.name, self.control_qos, &self.topics),
                )
            })
            .await?;
        let outbox = match outbox {
            Some((outbox, last)) => {
                let path = self.outbox.as_ref().map(|c| c.path.clone());
                let bye = last.and_then(|m| farewell(&self.name, &topics, &m));
                Some(start_outbox(path.unwrap_or_default(), &link, (outbox, bye)).await?)
            }
            None => None,
        };
        let kept_by = outbox.as_ref().map(|(o, _)| o.clone());
        let shared = shared_for(&self, topics, &link, epoch, (pending, peers), kept_by);
        let ctx = Context {
            shared: shared.clone(),
            via: Vec::new(),
            caller: None,
            call: None,
        };
        let mut intakes = Vec::new();
        for starter in std::mem::take(&mut self.intakes) {
            match starter.start(transport, ctx.clone()).await {
                Ok(running) => intakes.push(running),
                Err(e) => {
                    for running in intakes {
                        running.stop().await;
                    }
                    let _ = link.publisher.disconnect().await;
                    return Err(RunError::Connect(e));
                }
            }
        }
        if let Err(e) = announce_hello(&ctx).await {
            for running in intakes {
                running.stop().await;
            }
            return Err(RunError::Announce(e));
        }
        tracing::info!(node = %self.name, broker = %transport.describe(), "node started");
        let mut background: Vec<_> = std::mem::take(&mut self.background)
            .into_iter()
            .map(|f| tokio::spawn(f(ctx.clone())).abort_handle())
            .collect();
        if let Some((_, confirming)) = outbox {
            background.push(confirming);
        }
        let serve = ServeLoop::new(ctx.clone(), self, link.events, true).with(intakes, background);
        let task = tokio::spawn(serve.run());
        Ok(NodeHandle { ctx, task })
    }
}

/// A connection that sends requests but serves nothing and does not announce itself
/// (the `mqttcal` command is one).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mqttcal_core::{Client, config::MqttConfig, transport::MqttTransport};
/// let transport = MqttTransport::new(MqttConfig::default());
/// let client = Client::connect(&transport, "my-script", "").await?;
/// let pong = client.context().request("labd", "ping", serde_json::json!({})).await?;
/// println!("{pong}");
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client {
    handle: NodeHandle,
}

impl Client {
    /// Connects as `name` under topic `prefix`.
    pub async fn connect(
        transport: &dyn Transport,
        name: &str,
        prefix: &str,
    ) -> Result<Self, RunError> {
        Self::connect_as(transport, super::NodeBuilder::new(name).prefix(prefix)).await
    }

    /// Connects with the name, prefix, size limit and control QoS of `builder`; its
    /// capabilities are not served, but its topic handlers
    /// ([`NodeBuilder::on_topic`](super::NodeBuilder::on_topic)) get what arrives on their
    /// topics (QoS 0), from senders the topic vouches for in the addressed layout.
    pub async fn connect_as(
        transport: &dyn Transport,
        builder: super::NodeBuilder,
    ) -> Result<Self, RunError> {
        let node = builder.build();
        let topics = topics_for(&node)?;
        let mut replies: Vec<Subscription> = topics
            .filters(topics::REPLY, &node.name)
            .into_iter()
            .map(|f| Subscription::new(f, node.control_qos).no_local())
            .collect();
        // The builder's extra topics (`on_topic`), read on this one connection: a client
        // logged in under one name holds one session.
        for t in &node.topics {
            for full in topics.filters(&t.topic, &node.name) {
                if !replies.iter().any(|s| s.filter == full) {
                    let sub = Subscription::new(full, QoS::AtMostOnce);
                    replies.push(if t.hear_own { sub } else { sub.no_local() });
                }
            }
        }
        let pending = Pending::start();
        let peers = Arc::new(Peers::default());
        let link = transport
            .connect(SessionSpec {
                login: login_for(&topics, &node.name),
                direct: Some(replies_direct(
                    &topics, &node.name, node.limit, &pending, &peers,
                )),
                ..SessionSpec::new(node.name.clone(), replies)
            })
            .await?;
        let shared = shared_for(
            &node,
            topics,
            &link,
            Timestamp::now().as_micros(),
            (pending, peers),
            None,
        );
        let ctx = Context {
            shared,
            via: Vec::new(),
            caller: None,
            call: None,
        };
        let serve = ServeLoop::new(ctx.clone(), node, link.events, false);
        let task = tokio::spawn(serve.run());
        Ok(Self {
            handle: NodeHandle { ctx, task },
        })
    }

    /// The context to send requests with.
    pub fn context(&self) -> &Context {
        self.handle.context()
    }

    /// Disconnects cleanly.
    pub async fn close(self) {
        let _ = self.handle.stop().await;
    }
}
