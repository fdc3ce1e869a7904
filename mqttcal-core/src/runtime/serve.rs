//! The event loop of a node: routes messages, answers built-ins, runs handlers, stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::builtin::{self, PingReply, MAP, PING, STOP};
use super::calls::{self, send_reply, Answer, Calls, Lane};
use super::registry::Registry;
use super::seen::Seen;
use super::{Node, StopFn, TopicSpec};
use crate::call_error::CallError;
use crate::clock::Timestamp;
use crate::context::Context;
use crate::envelope::{Envelope, Kind};
use crate::error::NodeError;
use crate::throttle::Throttle;
use crate::topics;
use crate::transport::{Event, Events};

/// The most characters of an unknown capability's name its error reply repeats.
const MAX_ECHO: usize = 100;

/// How often a node that publishes data announces its last sequence numbers.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// The last will: `bye` with reason `lost` and the run's epoch, so that a receiver can tell
/// a node that comes back in the same run (a broker restart, a network cut) from a lost one.
pub(crate) fn will_payload(name: &str, epoch: u64) -> Vec<u8> {
    let mut env = Envelope::new(name, "*");
    env.timestamp = Some(Timestamp::now());
    env.epoch = Some(epoch);
    env.message = Some("bye".into());
    env.fields.insert("reason".into(), "lost".into());
    env.encode(usize::MAX).unwrap_or_default()
}

fn hello(ctx: &Context) -> Envelope {
    let mut env = Envelope::new(ctx.name(), "*");
    env.message = Some("hello".into());
    env.epoch = Some(ctx.epoch());
    env.fields.insert("sdk".into(), builtin::sdk().into());
    env.direct = ctx.shared.direct;
    env
}

pub(crate) async fn announce_hello(ctx: &Context) -> Result<(), CallError> {
    ctx.shared.publish(topics::ANNOUNCE, hello(ctx)).await
}

/// A topic handler's queue, and the task that drains it.
struct TopicQueue {
    tx: mpsc::Sender<Envelope>,
    task: AbortHandle,
}

/// How many messages wait for one topic handler before newer ones are shed.
const TOPIC_QUEUE: usize = 1024;

pub(crate) struct ServeLoop {
    ctx: Context,
    handlers: HashMap<String, TopicQueue>,
    specs: HashMap<String, TopicSpec>,
    on_stop: Mutex<Option<StopFn>>,
    events: Events,
    serve: bool,
    seen: Seen,
    calls: Calls,
    losses: Arc<Throttle>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    /// Who may stop the node: everyone (`None`, the shared layout) or these logins.
    stop_from: Option<Vec<String>>,
    intakes: Vec<crate::intake::Running>,
    background: Vec<AbortHandle>,
    registry: Registry,
}

impl ServeLoop {
    pub(crate) fn new(ctx: Context, node: Node, events: Events, serve: bool) -> Self {
        // Subscribed before the loop is spawned, so an early stop is never missed.
        let ctx_stop = ctx.shared.stop.subscribe();
        let mut handlers = HashMap::new();
        let mut specs = HashMap::new();
        for spec in node.topics {
            if let Some(handler) = spec.handler.clone() {
                let (tx, mut rx) = mpsc::channel::<Envelope>(TOPIC_QUEUE);
                let hctx = ctx.clone();
                let task = tokio::spawn(async move {
                    while let Some(env) = rx.recv().await {
                        handler(env, hctx.clone()).await;
                    }
                });
                handlers.insert(
                    spec.topic.clone(),
                    TopicQueue {
                        tx,
                        task: task.abort_handle(),
                    },
                );
            }
            specs.insert(spec.topic.clone(), spec);
        }
        Self {
            ctx,
            handlers,
            specs,
            on_stop: Mutex::new(node.on_stop),
            registry: node.registry,
            events,
            serve,
            seen: Seen::default(),
            calls: Calls::new(node.max_calls),
            losses: Arc::new(Throttle::default()),
            stop_rx: ctx_stop,
            stop_from: (node.layout == crate::topics::Layout::Addressed).then_some(node.stop_from),
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
                            let _ = self.ctx.shared.publish_soon(topics::ANNOUNCE, hello(&self.ctx));
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

    /// Handles one message; `true` when the node must stop. Never waits for a handler:
    /// the connection is always read.
    async fn on_message(&mut self, topic: &str, payload: &[u8]) -> bool {
        let Some(t) = self.ctx.shared.topics.parse(topic) else {
            return false;
        };
        let name = t.name;
        let env = match Envelope::decode(payload, self.ctx.shared.limit) {
            Ok(env) => env,
            Err(e) => {
                self.malformed(name, t.from, payload, &e).await;
                return false;
            }
        };
        // Addressed layout: the broker's ACL vouches for the topic, not for the payload.
        if !t.matches(&env.from, &env.to) {
            if let Some(n) = self.losses.hit("spoofed") {
                tracing::warn!(node = %self.ctx.name(), topic, from = %env.from, "dropped {n} message(s) whose `from` or `to` differs from the topic's");
            }
            return false;
        }
        let me = self.ctx.name();
        // What each peer says of the topics it reads (see `peers`).
        match (name, env.message.as_deref()) {
            (topics::REQUEST | topics::REPLY, _) => {
                self.ctx.shared.peers.note(&env.from, env.direct, None);
            }
            (topics::ANNOUNCE, Some("hello")) => {
                self.ctx.shared.peers.note(&env.from, env.direct, env.epoch);
            }
            (topics::ANNOUNCE, Some("bye")) if !env.closes_earlier_run() => {
                self.ctx.shared.peers.forget(&env.from, env.epoch)
            }
            _ => {}
        }
        match name {
            topics::REPLY => {
                if env.to == me {
                    self.ctx.shared.deliver_reply(env);
                }
                false
            }
            topics::REQUEST if self.serve => {
                if env.kind() == Kind::Request && env.is_for(me) {
                    return self.on_request(env).await;
                }
                false
            }
            topics::SYSTEM if self.serve && env.cmd.as_deref() == Some(STOP) => {
                if !env.is_for(me) {
                    return false;
                }
                if !self.may_stop(&env.from) {
                    if let Some(n) = self.losses.hit("forbidden") {
                        tracing::warn!(node = %me, from = %env.from, "{n} stop(s) refused: the sender may not stop this node");
                    }
                    return false;
                }
                tracing::info!(node = %me, from = %env.from, "stop received on system");
                true
            }
            other => {
                self.on_topic(other, env).await;
                false
            }
        }
    }

    /// `unknown_capability` for `id`, suggesting the capability it is closest to.
    fn unknown(&self, id: &str) -> NodeError {
        // The name is echoed cut short: a reply never grows with what a stranger sent.
        let mut e = match id.char_indices().nth(MAX_ECHO) {
            Some((cut, _)) => NodeError::unknown_capability(&format!("{}…", &id[..cut])),
            None => NodeError::unknown_capability(id),
        };
        if let Some(near) = crate::suggest::closest(id, self.registry.ids()) {
            e.message = format!("{}: did you mean `{near}`?", e.message);
            e = e.with_details(json!({ "did_you_mean": near }));
        }
        e
    }

    /// Whether `from` may stop this node.
    fn may_stop(&self, from: &str) -> bool {
        self.stop_from
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a == from))
    }

    /// A message that is not a valid envelope, on protocol topic `topic` (whose sender is
    /// `sender` where the topic names one).
    async fn malformed(
        &self,
        topic: &str,
        sender: Option<&str>,
        payload: &[u8],
        e: &crate::envelope::DecodeError,
    ) {
        let why = crate::error::error_chain(e);
        if topic == topics::REQUEST
            && self.serve
            && super::calls::answer_malformed(&self.ctx, payload, sender, &why).await
        {
            return;
        }
        if let Some(n) = self.losses.hit("malformed") {
            tracing::warn!(node = %self.ctx.name(), topic, "dropped {n} malformed message(s), latest: {why}");
        }
    }

    /// A message on an extra topic: a command to run, or one for the topic's handler.
    async fn on_topic(&self, topic: &str, env: Envelope) {
        let Some(spec) = self.specs.get(topic) else {
            return;
        };
        if env.from == self.ctx.name() && !spec.hear_own {
            return;
        }
        if spec.commands && self.serve && env.is_for(self.ctx.name()) {
            if let Some(cap) = env.cmd.as_deref().and_then(|c| self.registry.get(c)) {
                if !builtin::is_builtin(&cap.info.id) {
                    let answer = Answer::Command {
                        from: env.from.clone(),
                    };
                    self.calls
                        .start(&self.ctx, &self.losses, cap, env, answer)
                        .await;
                    return;
                }
            }
        }
        let Some(queue) = self.handlers.get(topic) else {
            return;
        };
        if queue.tx.try_send(env).is_err() {
            if let Some(n) = self.losses.hit("shed") {
                tracing::warn!(node = %self.ctx.name(), topic, "the handler of `{topic}` is behind: {n} message(s) shed");
            }
        }
    }

    async fn on_request(&mut self, env: Envelope) -> bool {
        let Some(id) = env.requestid.clone() else {
            if let Some(n) = self.losses.hit("malformed") {
                tracing::warn!(node = %self.ctx.name(), from = %env.from, "dropped {n} malformed message(s), latest: a request without requestid");
            }
            return false;
        };
        if env.from.is_empty() || self.seen.check(&env.from, &id) {
            return false;
        }
        let broadcast = env.to == "*";
        let cap = env.request.clone().unwrap_or_default();
        if builtin::is_builtin(&cap) {
            if let Some(unknown) = env.fields.keys().next() {
                let err = NodeError::invalid_params(format!(
                    "unknown parameter `{unknown}` (`{cap}` takes no parameters)"
                ));
                if !broadcast {
                    send_reply(&self.ctx, &env.from, &id, env.direct, Err(err)).await;
                }
                return false;
            }
        }
        let reply = match cap.as_str() {
            PING => Ok(serde_json::to_value(PingReply {
                uptime: self.ctx.shared.started.elapsed().as_secs_f64(),
                sdk: builtin::sdk(),
                running: self.calls.running(),
                epoch: self.ctx.epoch(),
                seqs: serde_json::from_value(self.ctx.shared.last_seqs()).unwrap_or_default(),
                losses: {
                    let mut losses = self.losses.totals();
                    // With an outbox, what it set aside; without, what the transport counted.
                    let refused = match self.ctx.shared.outbox.as_ref() {
                        Some(outbox) => outbox.refused(),
                        None => self.ctx.shared.publisher.refused(),
                    };
                    if refused > 0 {
                        losses.insert("refused".into(), refused);
                    }
                    losses
                },
                outbox: self.ctx.shared.outbox.as_ref().map(|o| o.kept()),
            })
            .unwrap_or(Value::Null)),
            MAP => Ok(serde_json::to_value(self.registry.infos()).unwrap_or(Value::Null)),
            // A stop to every node goes on `system`, which a lab's bridge keeps inside the
            // lab; a `stop` request crosses it, so as a broadcast it is refused.
            STOP if broadcast => Err(NodeError::invalid_params(
                "a `stop` request must name its node; to stop every node send `stop` on `system` (`mqttcal stop '*'`), which stays inside its lab",
            )),
            STOP if !self.may_stop(&env.from) => {
                if let Some(n) = self.losses.hit("forbidden") {
                    tracing::warn!(node = %self.ctx.name(), from = %env.from, "{n} stop(s) refused: the sender may not stop this node");
                }
                Err(NodeError::forbidden(format!(
                    "`{}` may not stop `{}`",
                    env.from,
                    self.ctx.name()
                )))
            }
            STOP => {
                send_reply(&self.ctx, &env.from, &id, env.direct, Ok(json!("stopping"))).await;
                tracing::info!(node = %self.ctx.name(), from = %env.from, "stop requested");
                return true;
            }
            other => match self.registry.get(other) {
                Some(c) if !builtin::is_builtin(other) => {
                    let answer = if broadcast {
                        Answer::Broadcast {
                            caller: env.from.clone(),
                            requestid: id,
                            direct: env.direct,
                        }
                    } else {
                        Answer::Direct {
                            caller: env.from.clone(),
                            requestid: id,
                            direct: env.direct,
                        }
                    };
                    self.calls
                        .start(&self.ctx, &self.losses, c, env, answer)
                        .await;
                    return false;
                }
                _ if broadcast => return false,
                _ => Err(self.unknown(other)),
            },
        };
        calls::reply(&self.ctx, &env.from, &id, env.direct, reply, Lane::First);
        false
    }

    async fn heartbeat(&self) {
        let seqs = self.ctx.shared.last_seqs();
        if seqs.as_object().is_some_and(|m| !m.is_empty()) {
            let mut env = Envelope::new(self.ctx.name(), "*");
            env.message = Some("heartbeat".into());
            env.epoch = Some(self.ctx.epoch());
            env.fields.insert("seqs".into(), seqs);
            let _ = self.ctx.shared.publish_soon(topics::ANNOUNCE, env);
        }
    }

    /// From now on the connection's messages are read by a task of their own, which hands
    /// over replies (a stop hook may still call other nodes) and drops the rest: the
    /// connection never waits for a loop that no longer reads it.
    fn drain_events(&mut self) {
        let (_closed, rx) = mpsc::channel(1);
        let mut events = std::mem::replace(&mut self.events, Events::new(rx));
        let shared = self.ctx.shared.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let Event::Message { topic, payload, .. } = ev else {
                    continue;
                };
                let Some(t) = shared.topics.parse(&topic) else {
                    continue;
                };
                if t.name != topics::REPLY {
                    continue;
                }
                if let Ok(env) = Envelope::decode(&payload, shared.limit) {
                    if env.to == shared.name && t.matches(&env.from, &env.to) {
                        shared.deliver_reply(env);
                    }
                }
            }
        });
    }

    async fn shutdown(mut self) {
        self.drain_events();
        self.calls.cancel_all(&self.ctx, &self.losses).await;
        for (_, queue) in self.handlers.drain() {
            queue.task.abort();
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
        if let Some(outbox) = &self.ctx.shared.outbox {
            outbox.flush(&*self.ctx.shared.publisher).await;
        }
        if self.serve {
            let mut env = Envelope::new(self.ctx.name(), "*");
            env.message = Some("bye".into());
            env.epoch = Some(self.ctx.epoch());
            let seqs = self.ctx.shared.last_seqs();
            if seqs.as_object().is_some_and(|m| !m.is_empty()) {
                env.fields.insert("seqs".into(), seqs);
            }
            match self.ctx.shared.publish(topics::ANNOUNCE, env).await {
                Ok(_) => {
                    if let Some(outbox) = &self.ctx.shared.outbox {
                        outbox.ended(&*self.ctx.shared.publisher).await;
                    }
                }
                Err(e) => {
                    tracing::warn!("cannot publish bye: {}", crate::error::error_chain(&e))
                }
            }
        }
        if let Err(e) = self.ctx.shared.publisher.disconnect().await {
            tracing::warn!("unclean disconnect: {e}");
        }
        // A client (no capabilities served, no hello said) ends without a word.
        if self.serve {
            tracing::info!(node = %self.ctx.name(), "stopped");
        }
    }
}
