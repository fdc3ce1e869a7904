//! The node runtime: building a node, connecting it, serving requests, stopping it.

use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::registry::Registry;
use crate::context::Context;
use crate::envelope::{Envelope, DEFAULT_MAX_MESSAGE_SIZE};
use crate::error::NodeError;
use crate::transport::{BoxFuture, QoS};

mod builtin;
mod calls;
mod handle;
mod peers;
mod pending;
mod registry;
mod seen;
mod serve;
mod shallow;
pub(crate) mod shared;

pub use builtin::PingReply;
pub use handle::{Client, NodeHandle, RunError};

/// Handles the simple messages of one extra topic, in arrival order.
pub(crate) type TopicFn = Arc<dyn Fn(Envelope, Context) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a node does with the messages of one extra topic.
#[derive(Clone, Default)]
pub(crate) struct TopicSpec {
    pub(crate) topic: String,
    /// Gets every simple message, in arrival order.
    pub(crate) handler: Option<TopicFn>,
    /// A message with `cmd` naming one of the node's capabilities, addressed to it, runs
    /// that capability (no reply: there is no request id).
    pub(crate) commands: bool,
    /// The node's own publications on the topic reach it too.
    pub(crate) hear_own: bool,
}

/// The login that may stop a node in the addressed layout unless
/// [`NodeBuilder::allow_stop_from`] says otherwise.
pub const DEFAULT_STOP_FROM: &str = "admin";

/// The default limit of calls a node runs at once.
pub const DEFAULT_MAX_CALLS: usize = 256;

/// Runs once when the node stops, after running handlers are cancelled.
pub(crate) type StopFn = Box<dyn FnOnce(Context) -> BoxFuture<'static, ()> + Send>;

/// A task that runs beside the node from its start until it stops.
pub(crate) type BackgroundFn = Box<dyn FnOnce(Context) -> BoxFuture<'static, ()> + Send>;

/// Builds a node: its name, capabilities and extra topics.
///
/// ```
/// use mqttcal_core::{NodeBuilder, NodeError, NoParams};
///
/// let node = NodeBuilder::new("thermo")
///     .capability("read", "Read the temperature, in degrees Celsius", |_: NoParams, _ctx| async {
///         Ok::<_, NodeError>(20.5)
///     })
///     .build();
/// assert_eq!(node.name(), "thermo");
/// ```
#[must_use]
pub struct NodeBuilder {
    name: String,
    prefix: String,
    layout: crate::topics::Layout,
    stop_from: Vec<String>,
    limit: usize,
    control_qos: QoS,
    registry: Registry,
    topics: Vec<TopicSpec>,
    max_calls: usize,
    on_stop: Option<StopFn>,
    intakes: Vec<Box<dyn crate::intake::Starter>>,
    background: Vec<BackgroundFn>,
    outbox: Option<crate::outbox::OutboxConfig>,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("name", &self.name)
            .finish()
    }
}

impl NodeBuilder {
    /// A node named `name` (its `servicename`, unique under a topic prefix).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            prefix: String::new(),
            layout: crate::topics::Layout::Shared,
            stop_from: vec![DEFAULT_STOP_FROM.to_owned()],
            limit: DEFAULT_MAX_MESSAGE_SIZE,
            control_qos: QoS::AtMostOnce,
            registry: builtin::registry(),
            topics: Vec::new(),
            max_calls: DEFAULT_MAX_CALLS,
            on_stop: None,
            intakes: Vec::new(),
            background: Vec::new(),
            outbox: None,
        }
    }

    fn topic_spec(&mut self, topic: &str) -> &mut TopicSpec {
        let i = match self.topics.iter().position(|t| t.topic == topic) {
            Some(i) => i,
            None => {
                self.topics.push(TopicSpec {
                    topic: topic.to_owned(),
                    ..TopicSpec::default()
                });
                self.topics.len() - 1
            }
        };
        &mut self.topics[i]
    }

    /// At most `n` capability calls at once on this node (default [`DEFAULT_MAX_CALLS`]);
    /// one more is answered `busy` at once. One capability may hold three quarters of
    /// them; the rest stays free for the others. The built-ins are never counted or
    /// refused.
    pub fn max_calls(mut self, n: usize) -> Self {
        self.max_calls = n.max(1);
        self
    }

    /// At most `n` calls of capability `id` at once; one more is answered `busy`, naming
    /// the call that runs (e.g. an instrument that measures one thing at a time:
    /// `#[capability(concurrency = 1)]` says the same on a `#[node]` method).
    ///
    /// ```
    /// use mqttcal_core::{NodeBuilder, NodeError, NoParams};
    ///
    /// let node = NodeBuilder::new("dmm")
    ///     .capability("measure", "Measure once", |_: NoParams, _ctx| async { Ok::<_, NodeError>(1.0) })
    ///     .concurrency("measure", 1)
    ///     .build();
    /// # assert_eq!(node.name(), "dmm");
    /// ```
    ///
    /// # Panics
    /// If `id` is not registered yet.
    pub fn concurrency(mut self, id: &str, n: usize) -> Self {
        match self.registry.get_mut(id) {
            Some(cap) if !builtin::is_builtin(id) => cap.concurrency = Some(n.max(1)),
            _ => panic!("`concurrency`: capability `{id}` is not registered (register it first)"),
        }
        self
    }

    /// The topic prefix shared by the nodes of one lab (default empty).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The topic layout (default: the report's shared topics). In the addressed layout
    /// (production mode) the node logs in under its own name, its topics carry it, and it
    /// drops any message whose `from` differs from the sender its topic names; see
    /// [`crate::topics`].
    pub fn layout(mut self, layout: crate::topics::Layout) -> Self {
        self.layout = layout;
        self
    }

    /// In the addressed layout, the logins that may stop this node (`stop` on `system` or
    /// as a request; default `admin`); anyone else gets `forbidden`. In the shared layout
    /// anyone on the broker may, as in the report.
    pub fn allow_stop_from<I, S>(mut self, logins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop_from = logins.into_iter().map(Into::into).collect();
        self
    }

    /// The largest message sent or accepted, in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// The QoS of control traffic (`system`, `request`, `reply`); default 0, which never
    /// replays a request after a restart and avoids the broker's delayed-ACK stalls.
    pub fn control_qos(mut self, qos: QoS) -> Self {
        self.control_qos = qos;
        self
    }

    /// Registers a capability served by a typed async function.
    ///
    /// The parameters `P` are deserialized strictly from the request's top-level fields;
    /// the result `R` becomes the reply. Handlers run concurrently, each in its own task.
    ///
    /// # Panics
    /// If `id` is already registered (including the built-in `ping`, `map` and `stop`).
    pub fn capability<P, R, F, Fut>(mut self, id: &str, description: &str, handler: F) -> Self
    where
        P: DeserializeOwned + JsonSchema + Send + 'static,
        R: Serialize + JsonSchema + 'static,
        F: Fn(P, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, NodeError>> + Send + 'static,
    {
        self.registry
            .insert(registry::make(id, description, handler));
        self
    }

    /// Registers the capabilities of a value whose impl block has [`#[node]`](crate::node).
    pub fn register<T: crate::__private::Capabilities>(self, node: T) -> Self {
        self.register_shared(Arc::new(tokio::sync::RwLock::new(node)))
    }

    /// Like [`NodeBuilder::register`], for a value that the node's other parts also use:
    /// a topic handler ([`NodeBuilder::on_topic`]) or the stop hook (leave the instruments
    /// safe). The capabilities lock it as `#[node]` describes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mqttcal_core::{NodeBuilder, NodeError, node};
    /// use tokio::sync::RwLock;
    ///
    /// struct Relay { closed: bool }
    ///
    /// #[node]
    /// impl Relay {
    ///     /// Close the relay.
    ///     #[capability]
    ///     async fn close(&mut self) -> Result<(), NodeError> {
    ///         self.closed = true;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let relay = Arc::new(RwLock::new(Relay { closed: false }));
    /// let for_stop = relay.clone();
    /// let node = NodeBuilder::new("relay")
    ///     .register_shared(relay)
    ///     .on_stop(move |_| async move { for_stop.write().await.closed = false })
    ///     .build();
    /// assert_eq!(node.capabilities().len(), 4);
    /// ```
    pub fn register_shared<T: crate::__private::Capabilities>(
        self,
        node: Arc<tokio::sync::RwLock<T>>,
    ) -> Self {
        T::register(self, node)
    }

    /// Subscribes to an extra topic (e.g. `meas`); its messages reach `handler` one at a
    /// time, in arrival order.
    ///
    /// The handler's queue is bounded: when the handler falls more than 1024 messages
    /// behind, newer messages are shed and counted (`ping` reports `losses.shed`), so a
    /// flood never stalls the node. Use a durable [intake](crate::intake) for data that
    /// must not be lost. The node's own publications on the topic are left out unless
    /// [`NodeBuilder::hear_own`] says otherwise.
    ///
    /// # Panics
    /// If `topic` already has a handler.
    pub fn on_topic<F, Fut>(mut self, topic: &str, handler: F) -> Self
    where
        F: Fn(Envelope, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: TopicFn = Arc::new(move |env, ctx| Box::pin(handler(env, ctx)));
        let spec = self.topic_spec(topic);
        assert!(
            spec.handler.is_none(),
            "topic `{topic}` has a handler already"
        );
        spec.handler = Some(f);
        self
    }

    /// Simple messages on `topic` whose `cmd` names one of this node's capabilities and
    /// whose `to` is this node (or `*`) run that capability with the message's other
    /// fields as parameters, as the report's trigger on `meas` does
    /// (`{"to": "labd", "cmd": "measure", "repetitions": 10}`). They run like requests
    /// (same concurrency limits, cancelled at a stop) but nobody is replied to: a failure or
    /// a `busy` is counted and logged (rate-limited). Other `cmd` values are ignored.
    pub fn commands_on(mut self, topic: &str) -> Self {
        self.topic_spec(topic).commands = true;
        self
    }

    /// Lets the node's own publications on `topic` reach its handler. By default they do
    /// not: a node reading the topic it publishes to would otherwise read its own output
    /// back (the runtime filters them by `from`, as not every broker honours MQTT 5's
    /// "no local").
    pub fn hear_own(mut self, topic: &str) -> Self {
        self.topic_spec(topic).hear_own = true;
        self
    }

    /// Runs `f` when the node stops, after cancelling running handlers and before `bye`:
    /// the place to leave instruments safe and flush data.
    pub fn on_stop<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_stop = Some(Box::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Adds a durable intake (see [`crate::intake`]): its session connects when the node
    /// starts, before `hello`, and it commits and acknowledges what it holds when the node
    /// stops, after the stop hook.
    pub fn intake<T: Send + Sync + 'static>(mut self, intake: crate::intake::Intake<T>) -> Self {
        self.intakes.push(Box::new(intake));
        self
    }

    /// Runs `f` beside the node, from just after `hello` until the node stops (it is then
    /// cancelled, before the stop hook runs): periodic work such as a census.
    pub fn background<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background.push(Box::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Keeps the node's data messages ([`Context::publish`]) in a durable outbox until the
    /// broker confirms them, and sends again at start what a killed run left there (see
    /// [`crate::outbox`]). The node then refuses to start on a transport that cannot
    /// confirm (the Paho one, `paho` feature, cannot), or when the file cannot be opened.
    ///
    /// ```no_run
    /// use mqttcal_core::{outbox::OutboxConfig, NodeBuilder};
    /// let node = NodeBuilder::new("thermo-logger")
    ///     .outbox(OutboxConfig::new("/var/lib/mqttcal/thermo-logger.outbox"))
    ///     .build();
    /// ```
    pub fn outbox(mut self, cfg: crate::outbox::OutboxConfig) -> Self {
        self.outbox = Some(cfg);
        self
    }

    /// Finishes the node.
    pub fn build(self) -> Node {
        Node {
            name: self.name,
            prefix: self.prefix,
            layout: self.layout,
            stop_from: self.stop_from,
            limit: self.limit,
            control_qos: self.control_qos,
            registry: self.registry,
            topics: self.topics,
            max_calls: self.max_calls,
            on_stop: self.on_stop,
            intakes: self.intakes,
            background: self.background,
            outbox: self.outbox,
        }
    }
}

/// A node ready to connect. See [`NodeBuilder`].
pub struct Node {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) layout: crate::topics::Layout,
    pub(crate) stop_from: Vec<String>,
    pub(crate) limit: usize,
    pub(crate) control_qos: QoS,
    pub(crate) registry: Registry,
    pub(crate) topics: Vec<TopicSpec>,
    pub(crate) max_calls: usize,
    pub(crate) on_stop: Option<StopFn>,
    pub(crate) intakes: Vec<Box<dyn crate::intake::Starter>>,
    pub(crate) background: Vec<BackgroundFn>,
    pub(crate) outbox: Option<crate::outbox::OutboxConfig>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name).finish()
    }
}

impl Node {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The capabilities `map` lists, built-ins first.
    pub fn capabilities(&self) -> Vec<crate::CapabilityInfo> {
        self.registry.infos()
    }
}
