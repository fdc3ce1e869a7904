//! What a handler gets: send, request, gather, dispatch and publish, without touching MQTT.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::call_error::CallError;
use crate::clock::request_id;
use crate::envelope::{is_reserved, EncodeError, Envelope};
use crate::error::NodeError;
use crate::runtime::shared::Shared;
use crate::topics;

/// Default time to wait for the reply to a request sent to one node.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::call_error::MAX_HOPS;

/// How to gather replies to a broadcast request.
#[derive(Debug, Clone, Copy)]
pub struct Gather {
    /// Stop waiting after this long.
    pub timeout: Duration,
    /// Stop as soon as this many replies came.
    pub expect: Option<usize>,
}

impl Default for Gather {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            expect: None,
        }
    }
}

/// A handle to the node for capability handlers and clients. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Context {
    pub(crate) shared: Arc<Shared>,
    pub(crate) via: Vec<String>,
    /// The sender of the request (or command) this handler answers.
    pub(crate) caller: Option<String>,
    /// The request this handler answers, for its progress messages.
    pub(crate) call: Option<Arc<crate::progress::CallProgress>>,
}

fn to_fields(params: impl Serialize) -> Result<Map<String, Value>, CallError> {
    match serde_json::to_value(params).map_err(|e| CallError::Encode(EncodeError::Json(e)))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(CallError::BadParams),
    }
}

impl Context {
    /// This node's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// In a capability handler, the node or client whose request (or command) it answers,
    /// as the message's `from` names it; `None` outside a handler. Trust it as far as the
    /// broker ties `from` to a login (the addressed topic layout with the shipped ACL, see docs/deploying.md): on an
    /// open broker anyone can claim any name.
    pub fn caller(&self) -> Option<&str> {
        self.caller.as_deref()
    }

    /// The topic layout: in [`Layout::Addressed`](crate::topics::Layout::Addressed) (with
    /// the shipped ACL) the broker ties [`Context::caller`] to the sender's login.
    pub fn layout(&self) -> crate::topics::Layout {
        self.shared.topics.layout()
    }

    /// This run's epoch (microseconds at start): changes at every start of the node.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// Sends a simple message on `topic`; `fields` (an object) become top-level fields,
    /// including `cmd` or `message` if given.
    pub async fn send(
        &self,
        topic: &str,
        to: &str,
        fields: impl Serialize,
    ) -> Result<(), CallError> {
        let mut map = to_fields(fields)?;
        map.insert("from".into(), self.shared.name.clone().into());
        map.insert("to".into(), to.into());
        map.remove("timestamp");
        let env = Envelope::from_map(map).map_err(|_| CallError::BadParams)?;
        self.shared.publish(topic, env).await
    }

    /// Publishes a data message on `topic` to `*`, with this node's `seq` and `epoch`.
    /// Reserved names in `data` are refused. With an outbox
    /// ([`NodeBuilder::outbox`](crate::NodeBuilder::outbox)) the message is kept on disk
    /// first, until the broker confirms it.
    pub async fn publish(&self, topic: &str, data: impl Serialize) -> Result<u64, CallError> {
        let fields = to_fields(data)?;
        check_reserved(&fields)?;
        let seq = self.shared.next_seq(topic);
        let mut env = Envelope::new(self.shared.name.clone(), "*");
        env.seq = Some(seq);
        env.epoch = Some(self.shared.epoch);
        env.fields = fields;
        self.shared.publish_data(topic, env).await?;
        Ok(seq)
    }

    /// Sends a request to one node and waits for its reply value.
    pub async fn request(
        &self,
        to: &str,
        capability: &str,
        params: impl Serialize,
    ) -> Result<Value, CallError> {
        self.request_timeout(to, capability, params, DEFAULT_TIMEOUT)
            .await
    }

    /// Like [`Context::request`], decoding the reply as `R`.
    pub async fn request_as<R: DeserializeOwned>(
        &self,
        to: &str,
        capability: &str,
        params: impl Serialize,
    ) -> Result<R, CallError> {
        let v = self.request(to, capability, params).await?;
        serde_json::from_value(v).map_err(|e| CallError::Remote {
            from: to.to_owned(),
            error: NodeError::internal(format!("unexpected reply: {e}")),
        })
    }

    /// Sends a request to one node and waits at most `timeout` for its reply value.
    pub async fn request_timeout(
        &self,
        to: &str,
        capability: &str,
        params: impl Serialize,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let reply = self
            .request_envelopes(
                to,
                capability,
                to_fields(params)?,
                Gather {
                    timeout,
                    expect: Some(1),
                },
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| CallError::Timeout {
                to: to.to_owned(),
                capability: capability.to_owned(),
                timeout,
            })?;
        reply_result(reply)
    }

    /// Sends a request to every node (`to: "*"`) and gathers the replies.
    pub async fn gather(
        &self,
        capability: &str,
        params: impl Serialize,
        gather: Gather,
    ) -> Result<Vec<Envelope>, CallError> {
        self.request_envelopes("*", capability, to_fields(params)?, gather)
            .await
    }

    /// Sends a request and returns the reply envelopes as received, until `gather` ends.
    pub async fn request_envelopes(
        &self,
        to: &str,
        capability: &str,
        params: Map<String, Value>,
        gather: Gather,
    ) -> Result<Vec<Envelope>, CallError> {
        check_reserved(&params)?;
        let shared = &self.shared;
        let ts = shared.clock.next();
        let id = request_id(&shared.name, ts);
        let now = tokio::time::Instant::now();
        // A timeout too long to add is as good as none: a year.
        let deadline = now
            .checked_add(gather.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        let mut rx = shared.register_pending(&id, deadline);
        let _forget = Forget(shared, &id);
        let mut env = Envelope::new(shared.name.clone(), to);
        env.timestamp = Some(ts);
        env.request = Some(capability.to_owned());
        env.requestid = Some(id.clone());
        env.via = self.via.clone();
        env.fields = params;
        // Said `direct` (see `peers`): if it meets silence, the next ones go to the shared
        // topic without it for a while (the peer's own topic, or ours, may not get through).
        let said_direct = to != "*" && shared.direct && !shared.peers.is_quiet(to);
        // The request may wait for room in the connection's queue (a flood of this node's
        // own data, a broker that reads nothing): never past the deadline.
        match tokio::time::timeout_at(deadline, shared.publish(topics::REQUEST, env)).await {
            Ok(sent) => sent?,
            Err(_) => {
                return Err(CallError::Timeout {
                    to: to.to_owned(),
                    capability: capability.to_owned(),
                    timeout: gather.timeout,
                })
            }
        }
        let mut replies = Vec::new();
        // The channel closes at the deadline (no timer per request: see `Pending`).
        while gather.expect.is_none_or(|n| replies.len() < n) {
            match rx.recv().await {
                Some(r) => {
                    if to == "*" || r.from == to {
                        replies.push(r);
                    }
                }
                None => break,
            }
        }
        if said_direct && replies.is_empty() {
            shared.peers.silent(to);
        }
        Ok(replies)
    }

    /// Forwards a request to sub-nodes and collects `{ "<node>": <reply or {"error": ...}> }`,
    /// answering before `deadline` with partial results when some fail.
    pub async fn dispatch(
        &self,
        targets: &[&str],
        capability: &str,
        params: impl Serialize,
        deadline: Duration,
    ) -> Result<Map<String, Value>, CallError> {
        if self.via.len() + 1 > MAX_HOPS {
            return Err(CallError::TooManyHops);
        }
        let params = to_fields(params)?;
        let mut hop = self.clone();
        hop.via.push(self.shared.name.clone());
        let calls = targets.iter().map(|t| {
            let hop = hop.clone();
            let params = params.clone();
            async move {
                let r = hop
                    .request_timeout(t, capability, params, deadline)
                    .await
                    .map_err(NodeError::from);
                (t.to_string(), r)
            }
        });
        let mut out = Map::new();
        for (node, r) in join_all(calls).await {
            let v = match r {
                Ok(v) => v,
                Err(e) => serde_json::json!({ "error": e }),
            };
            out.insert(node, v);
        }
        Ok(out)
    }

    /// Reports the progress of the call this handler answers: step `i` of `n` (and an
    /// optional `text`, e.g. "reading 3 of 10"), as a simple message on
    /// [`topics::PROGRESS`] to the caller, with its `requestid`, the seconds `elapsed_s`
    /// since the call began and, from the first step on, an estimate `eta_s` of the
    /// seconds left. Callers show it as a progress bar and take it as a sign of life: the
    /// `mqttcal` command waits `--timeout` from the last one.
    ///
    /// Call it at every step and at least every 5 s; messages go out at most every
    /// 250 ms unless another hundredth of the work is done, so a fast loop may call it
    /// freely. Progress is QoS 0 and best effort: a failure to send it is not the call's
    /// failure, and nothing is sent outside a request handler (a command on a data topic
    /// has nobody waiting).
    ///
    /// ```
    /// use mqttcal_core::{Context, NodeError};
    /// async fn calibrate(steps: u64, ctx: &Context) -> Result<(), NodeError> {
    ///     for i in 0..steps {
    ///         // ... one step of the work ...
    ///         ctx.progress(i + 1, steps, Some(&format!("step {} of {steps}", i + 1))).await;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn progress(&self, i: u64, n: u64, text: Option<&str>) {
        let Some(call) = &self.call else {
            return;
        };
        let Some(elapsed) = call.due(i, n) else {
            return;
        };
        let caller = self.caller.clone().unwrap_or_default();
        let mut env = Envelope::new(self.shared.name.clone(), caller);
        env.requestid = Some(call.requestid.clone());
        env.fields.insert("i".into(), i.into());
        env.fields.insert("n".into(), n.into());
        env.fields.insert("elapsed_s".into(), elapsed.into());
        if i > 0 && i < n {
            #[allow(clippy::cast_precision_loss)]
            let eta = elapsed / i as f64 * (n - i) as f64;
            env.fields.insert("eta_s".into(), eta.into());
        }
        if let Some(t) = text {
            env.fields.insert("text".into(), t.into());
        }
        let _ = self.shared.publish(topics::PROGRESS, env).await;
    }

    /// Asks the node to stop, as a `stop` message would.
    pub fn request_stop(&self) {
        self.shared.stop.send_replace(true);
    }
}

fn check_reserved(fields: &Map<String, Value>) -> Result<(), CallError> {
    match fields.keys().find(|k| is_reserved(k)) {
        Some(k) => Err(CallError::Reserved(k.clone())),
        None => Ok(()),
    }
}

/// Runs futures concurrently and returns their outputs in order.
async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

/// The value of a reply, or its error.
pub fn reply_result(reply: Envelope) -> Result<Value, CallError> {
    match reply.error {
        Some(error) => Err(CallError::Remote {
            from: reply.from,
            error,
        }),
        None => Ok(reply.reply.unwrap_or(Value::Null)),
    }
}

struct Forget<'a>(&'a Shared, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.forget_pending(self.1);
    }
}
