//! The event loop of a node: routes messages, answers built-ins, runs handlers, stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::builtin::{self, PingReply, MAP, PING, STOP};
use super::registry::{HandlerFn, Registry};
use super::{Node, StopFn};
use crate::call_error::CallError;
use crate::clock::Timestamp;
use crate::context::Context;
use crate::envelope::{Envelope, Kind};
use crate::error::NodeError;
use crate::topics;
use crate::transport::Event;

/// How long a request id is remembered to drop duplicates.
const DEDUP_WINDOW: Duration = Duration::from_secs(60);
/// How often a node that publishes data announces its last sequence numbers.
const HEARTBEAT: Duration = Duration::from_secs(30);

pub(crate) fn will_payload(name: &str) -> Vec<u8> {
    let mut env = Envelope::new(name, "*");
    env.timestamp = Some(Timestamp::now());
    env.message = Some("bye".into());
    env.fields.insert("reason".into(), "lost".into());
    env.encode(usize::MAX).unwrap_or_default()
}

pub(crate) async fn announce_hello(ctx: &Context) -> Result<(), CallError> {
    let mut env = Envelope::new(ctx.name(), "*");
    env.message = Some("hello".into());
    env.epoch = Some(ctx.epoch());
    env.fields.insert("sdk".into(), builtin::sdk().into());
    ctx.shared.publish(topics::ANNOUNCE, env).await
}

struct ActiveCall {
    caller: String,
    requestid: String,
    abort: AbortHandle,
}

type Active = Arc<Mutex<HashMap<u64, ActiveCall>>>;

pub(crate) struct ServeLoop {
    ctx: Context,
    node_topics: HashMap<String, mpsc::Sender<Envelope>>,
    on_stop: Mutex<Option<StopFn>>,
    events: mpsc::Receiver<Event>,
    serve: bool,
    seen: HashMap<(String, String), Instant>,
    last_prune: Instant,
    active: Active,
    next_call: u64,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    intakes: Vec<crate::intake::Running>,
    background: Vec<AbortHandle>,
    registry: Registry,
}

impl ServeLoop {
    pub(crate) fn new(
        ctx: Context,
        node: Node,
        events: mpsc::Receiver<Event>,
        serve: bool,
    ) -> Self {
        // Subscribed before the loop is spawned, so an early stop is never missed.
        let ctx_stop = ctx.shared.stop.subscribe();
        let mut node_topics = HashMap::new();
        for (topic, handler) in node.topics {
            let (tx, mut rx) = mpsc::channel::<Envelope>(1024);
            let hctx = ctx.clone();
            tokio::spawn(async move {
                while let Some(env) = rx.recv().await {
                    handler(env, hctx.clone()).await;
                }
            });
            node_topics.insert(topic, tx);
        }
        Self {
            ctx,
            node_topics,
            on_stop: Mutex::new(node.on_stop),
            registry: node.registry,
            events,
            serve,
            seen: HashMap::new(),
            last_prune: Instant::now(),
            active: Arc::default(),
            next_call: 0,
            stop_rx: ctx_stop,
            intakes: Vec::new(),
            background: Vec::new(),
        }
    }

    /// The node's running intakes and background tasks, stopped at shutdown.
    pub(crate) fn with(
        mut self,
        intakes: Vec<crate::intake::Running>,
        background: Vec<AbortHandle>,
    ) -> Self {
        self.intakes = intakes;
        self.background = background;
        self
    }

    pub(crate) async fn run(mut self) {
        let mut stop_rx = self.stop_rx.clone();
        if *stop_rx.borrow_and_update() {
            self.shutdown().await;
            return;
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Message { topic, payload, .. }) => {
                        if self.on_message(&topic, &payload).await {
                            break;
                        }
                    }
                    Some(Event::Ready { .. }) => {
                        tracing::info!(node = %self.ctx.name(), "reconnected");
                        if self.serve {
                            let _ = announce_hello(&self.ctx).await;
                        }
                    }
                    Some(Event::Down { reason }) => {
                        tracing::warn!(node = %self.ctx.name(), "connection lost ({reason}); reconnecting");
                    }
                    None => {
                        tracing::error!(node = %self.ctx.name(), "the transport ended");
                        return;
                    }
                },
                _ = stop_rx.changed() => break,
                _ = heartbeat.tick(), if self.serve => self.heartbeat().await,
            }
        }
        self.shutdown().await;
    }

    /// Handles one message; `true` when the node must stop.
    async fn on_message(&mut self, topic: &str, payload: &[u8]) -> bool {
        let shared = &self.ctx.shared;
        let Some(name) = shared.topics.strip(topic) else {
            return false;
        };
        let env = match Envelope::decode(payload, shared.limit) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(node = %shared.name, topic, "dropped a message: {}", crate::error::error_chain(&e));
                return false;
            }
        };
        match name {
            topics::REPLY => {
                if env.to == shared.name {
                    shared.deliver_reply(env);
                }
                false
            }
            topics::REQUEST if self.serve => {
                if env.kind() == Kind::Request && env.is_for(&shared.name) {
                    return self.on_request(env).await;
                }
                false
            }
            topics::SYSTEM if self.serve => {
                if env.cmd.as_deref() == Some(STOP) && env.is_for(&shared.name) {
                    tracing::info!(node = %shared.name, from = %env.from, "stop received on system");
                    return true;
                }
                self.to_topic_handler(name, env).await;
                false
            }
            other => {
                self.to_topic_handler(other, env).await;
                false
            }
        }
    }

    async fn to_topic_handler(&self, topic: &str, env: Envelope) {
        if let Some(tx) = self.node_topics.get(topic) {
            let _ = tx.send(env).await;
        }
    }

    fn is_duplicate(&mut self, env: &Envelope, id: &str) -> bool {
        let now = Instant::now();
        if now.duration_since(self.last_prune) > Duration::from_secs(10) {
            self.seen
                .retain(|_, t| now.duration_since(*t) < DEDUP_WINDOW);
            self.last_prune = now;
        }
        self.seen
            .insert((env.from.clone(), id.to_owned()), now)
            .is_some_and(|t| now.duration_since(t) < DEDUP_WINDOW)
    }

    async fn on_request(&mut self, env: Envelope) -> bool {
        let Some(id) = env.requestid.clone() else {
            tracing::warn!(node = %self.ctx.name(), from = %env.from, "request without requestid dropped");
            return false;
        };
        if self.is_duplicate(&env, &id) {
            return false;
        }
        let cap = env.request.clone().unwrap_or_default();
        if builtin::is_builtin(&cap) {
            if let Some(unknown) = env.fields.keys().next() {
                let err = NodeError::invalid_params(format!(
                    "unknown parameter `{unknown}` (`{cap}` takes no parameters)"
                ));
                send_reply(&self.ctx, &env.from, &id, Err(err)).await;
                return false;
            }
        }
        let reply = match cap.as_str() {
            PING => Ok(serde_json::to_value(PingReply {
                uptime: self.ctx.shared.started.elapsed().as_secs_f64(),
                sdk: builtin::sdk(),
                running: self.active.lock().map(|a| a.len()).unwrap_or(0),
                epoch: self.ctx.epoch(),
                seqs: serde_json::from_value(self.ctx.shared.last_seqs()).unwrap_or_default(),
            })
            .unwrap_or(Value::Null)),
            MAP => Ok(serde_json::to_value(self.registry.infos()).unwrap_or(Value::Null)),
            STOP => {
                send_reply(&self.ctx, &env.from, &id, Ok(json!("stopping"))).await;
                tracing::info!(node = %self.ctx.name(), from = %env.from, "stop requested");
                return true;
            }
            other => match self.registry.get(other) {
                Some(c) if !builtin::is_builtin(other) => {
                    self.spawn_call(c.handler.clone(), env, id);
                    return false;
                }
                _ if env.to == "*" => return false,
                _ => Err(NodeError::unknown_capability(other)),
            },
        };
        send_reply(&self.ctx, &env.from, &id, reply).await;
        false
    }

    fn spawn_call(&mut self, handler: HandlerFn, env: Envelope, id: String) {
        let call = self.next_call;
        self.next_call += 1;
        let mut ctx = self.ctx.clone();
        ctx.via = env.via.clone();
        ctx.via.truncate(crate::context::MAX_HOPS);
        let caller = env.from.clone();
        let active = self.active.clone();
        // Hold the lock while spawning so the task cannot finish before it is registered.
        let mut guard = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let task = tokio::spawn({
            let caller = caller.clone();
            let id = id.clone();
            async move {
                let result = handler(env.fields, ctx.clone()).await;
                // Only the task that removes itself replies: after a stop, the stop replies.
                let mine = active
                    .lock()
                    .map(|mut a| a.remove(&call).is_some())
                    .unwrap_or(false);
                if mine {
                    send_reply(&ctx, &caller, &id, result).await;
                }
            }
        });
        guard.insert(
            call,
            ActiveCall {
                caller,
                requestid: id,
                abort: task.abort_handle(),
            },
        );
    }

    async fn heartbeat(&self) {
        let seqs = self.ctx.shared.last_seqs();
        if seqs.as_object().is_some_and(|m| !m.is_empty()) {
            let mut env = Envelope::new(self.ctx.name(), "*");
            env.message = Some("heartbeat".into());
            env.epoch = Some(self.ctx.epoch());
            env.fields.insert("seqs".into(), seqs);
            let _ = self.ctx.shared.publish(topics::ANNOUNCE, env).await;
        }
    }

    async fn shutdown(mut self) {
        let calls: Vec<ActiveCall> = self
            .active
            .lock()
            .map(|mut a| a.drain().map(|(_, c)| c).collect())
            .unwrap_or_default();
        for c in calls {
            c.abort.abort();
            let err = NodeError::cancelled("the node is stopping");
            send_reply(&self.ctx, &c.caller, &c.requestid, Err(err)).await;
        }
        for task in self.background.drain(..) {
            task.abort();
        }
        let on_stop = self.on_stop.get_mut().map(Option::take).unwrap_or(None);
        if let Some(f) = on_stop {
            f(self.ctx.clone()).await;
        }
        for intake in self.intakes.drain(..) {
            intake.stop().await;
        }
        self.node_topics.clear();
        if self.serve {
            let mut env = Envelope::new(self.ctx.name(), "*");
            env.message = Some("bye".into());
            env.epoch = Some(self.ctx.epoch());
            let seqs = self.ctx.shared.last_seqs();
            if seqs.as_object().is_some_and(|m| !m.is_empty()) {
                env.fields.insert("seqs".into(), seqs);
            }
            if let Err(e) = self.ctx.shared.publish(topics::ANNOUNCE, env).await {
                tracing::warn!("cannot publish bye: {}", crate::error::error_chain(&e));
            }
        }
        if let Err(e) = self.ctx.shared.publisher.disconnect().await {
            tracing::warn!("unclean disconnect: {e}");
        }
        tracing::info!(node = %self.ctx.name(), "stopped");
    }
}

pub(crate) async fn send_reply(
    ctx: &Context,
    to: &str,
    requestid: &str,
    result: Result<Value, NodeError>,
) {
    let mut env = Envelope::new(ctx.name(), to);
    env.requestid = Some(requestid.to_owned());
    match result {
        Ok(v) => env.reply = Some(v),
        Err(e) => env.error = Some(e),
    }
    if to == ctx.name() {
        // `reply` is subscribed "no local": a reply to ourselves is handed over here.
        ctx.shared.deliver_reply(env.clone());
    }
    if let Err(e) = ctx.shared.publish(topics::REPLY, env).await {
        tracing::warn!(node = %ctx.name(), "cannot send a reply: {}", crate::error::error_chain(&e));
    }
}
