//! Running capability calls: admission (concurrency limits, `busy`), one task per call,
//! cancellation at a stop, and the reply, which is never silence for a caller that can be
//! answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tokio::task::AbortHandle;

use super::registry::Capability;
use crate::call_error::CallError;
use crate::context::Context;
use crate::envelope::{EncodeError, Envelope};
use crate::error::NodeError;
use crate::throttle::Throttle;
use crate::topics;
use crate::transport::Outgoing;

/// Who is told how a call ended.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// A request addressed to this node: every outcome is replied. `direct`: the request
    /// asked for the reply on the caller's own topic (see `peers`).
    Direct {
        caller: String,
        requestid: String,
        direct: bool,
    },
    /// A request to `*`: a success is replied, an error is not (a spoofed sender must not
    /// turn one broadcast into an error reply from every node).
    Broadcast {
        caller: String,
        requestid: String,
        direct: bool,
    },
    /// A command in a simple message (`cmd` on a data topic): nobody to reply to.
    Command { from: String },
}

impl Answer {
    fn describe(&self) -> String {
        match self {
            Self::Direct {
                caller, requestid, ..
            }
            | Self::Broadcast {
                caller, requestid, ..
            } => format!("request {requestid} from {caller}"),
            Self::Command { from } => format!("a command from {from}"),
        }
    }
}

pub(crate) struct ActiveCall {
    cap: String,
    answer: Answer,
    abort: AbortHandle,
}

/// How many of the node's `max` calls one capability may hold: a quarter is kept for the
/// others, so that a flood of slow calls to one (a setter waiting for an instrument) never
/// leaves a quick one (`lease`, `identify`) answering `busy`.
fn fair_share(max: usize) -> usize {
    (max - max.div_ceil(4)).max(1)
}

/// The calls running now, and the limits a new one must fit.
#[derive(Clone)]
pub(crate) struct Calls {
    active: Arc<Mutex<HashMap<u64, ActiveCall>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
    max_calls: usize,
}

impl Calls {
    pub(crate) fn new(max_calls: usize) -> Self {
        Self {
            active: Arc::default(),
            next: Arc::default(),
            max_calls: max_calls.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ActiveCall>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn running(&self) -> usize {
        self.lock().len()
    }

    /// `busy` when the node or the capability runs as many calls as it may.
    fn admit(
        active: &HashMap<u64, ActiveCall>,
        max: usize,
        cap: &Capability,
    ) -> Result<(), NodeError> {
        if active.len() >= max {
            return Err(NodeError::busy(format!(
                "the node runs {max} calls, its limit; try again when one ends"
            ))
            .with_details(json!({ "running": active.len(), "limit": max })));
        }
        let running: Vec<&ActiveCall> = active.values().filter(|c| c.cap == cap.info.id).collect();
        let share = fair_share(max);
        if running.len() >= share {
            return Err(NodeError::busy(format!(
                "`{}` already runs {} of the node's {max} calls; the rest is kept for its other capabilities: try again when one ends",
                cap.info.id,
                running.len()
            ))
            .with_details(json!({ "running": running.len(), "limit": share })));
        }
        let Some(limit) = cap.concurrency else {
            return Ok(());
        };
        if running.len() < limit {
            return Ok(());
        }
        let list: Vec<Value> = running
            .iter()
            .map(|c| match &c.answer {
                Answer::Direct {
                    caller, requestid, ..
                }
                | Answer::Broadcast {
                    caller, requestid, ..
                } => json!({ "from": caller, "requestid": requestid }),
                Answer::Command { from } => json!({ "from": from }),
            })
            .collect();
        let first = running
            .first()
            .map(|c| c.answer.describe())
            .unwrap_or_default();
        Err(NodeError::busy(format!(
            "`{}` runs {limit} call(s) at a time and is busy with {first}; try again when it ends",
            cap.info.id
        ))
        .with_details(json!({ "running": list, "limit": limit })))
    }

    /// Starts `cap` in a task of its own, or answers `busy` at once.
    pub(crate) async fn start(
        &self,
        ctx: &Context,
        losses: &Arc<Throttle>,
        cap: &Capability,
        env: Envelope,
        answer: Answer,
    ) {
        let mut ctx = ctx.clone();
        ctx.via = env.via;
        ctx.via.truncate(crate::context::MAX_HOPS);
        ctx.caller = Some(match &answer {
            Answer::Direct { caller, .. } | Answer::Broadcast { caller, .. } => caller.clone(),
            Answer::Command { from } => from.clone(),
        });
        ctx.call = match &answer {
            Answer::Direct { requestid, .. } => Some(Arc::new(crate::progress::CallProgress::new(
                requestid.clone(),
            ))),
            _ => None,
        };
        let refused = {
            let mut guard = self.lock();
            match Self::admit(&guard, self.max_calls, cap) {
                Err(busy) => Some(busy),
                Ok(()) => {
                    let call = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let handler = cap.handler.clone();
                    let active = self.active.clone();
                    let losses = losses.clone();
                    let task_answer = answer.clone();
                    let ctx = ctx.clone();
                    let fields = env.fields;
                    // Registered under the lock, so the task cannot end before it is listed.
                    let task = tokio::spawn(async move {
                        let result = handler(fields, ctx.clone()).await;
                        // Only the task that removes itself answers: after a stop, the stop does.
                        let mine = active
                            .lock()
                            .map(|mut a| a.remove(&call).is_some())
                            .unwrap_or(false);
                        if mine {
                            finish(&ctx, &losses, &task_answer, result).await;
                        }
                    });
                    guard.insert(
                        call,
                        ActiveCall {
                            cap: cap.info.id.clone(),
                            answer: answer.clone(),
                            abort: task.abort_handle(),
                        },
                    );
                    None
                }
            }
        };
        if let Some(busy) = refused {
            if let Some(n) = losses.hit("busy") {
                tracing::warn!(node = %ctx.name(), "{n} call(s) refused as busy, latest {}: {}", answer.describe(), busy.message);
            }
            finish(&ctx, losses, &answer, Err(busy)).await;
        }
    }

    /// Cancels every running call and tells each caller so.
    pub(crate) async fn cancel_all(&self, ctx: &Context, losses: &Throttle) {
        let calls: Vec<ActiveCall> = self.lock().drain().map(|(_, c)| c).collect();
        for c in calls {
            c.abort.abort();
            tracing::info!(node = %ctx.name(), cap = %c.cap, "cancelled {} (the node is stopping)", c.answer.describe());
            let err = NodeError::cancelled("the node is stopping");
            finish(ctx, losses, &c.answer, Err(err)).await;
        }
    }
}

/// Tells the caller how a call ended, as its kind of request allows.
async fn finish(
    ctx: &Context,
    losses: &Throttle,
    answer: &Answer,
    result: Result<Value, NodeError>,
) {
    match answer {
        Answer::Direct {
            caller,
            requestid,
            direct,
        } => send_reply(ctx, caller, requestid, *direct, result).await,
        Answer::Broadcast {
            caller,
            requestid,
            direct,
        } => match result {
            Ok(_) => send_reply(ctx, caller, requestid, *direct, result).await,
            Err(e) => {
                if let Some(n) = losses.hit("withheld") {
                    tracing::warn!(node = %ctx.name(), "{n} error reply(ies) to broadcasts withheld, latest to {caller}: {e}");
                }
            }
        },
        Answer::Command { from } => {
            if let Err(e) = result {
                if let Some(n) = losses.hit("command_failed") {
                    tracing::warn!(node = %ctx.name(), "{n} command(s) failed, latest from {from}: {e}");
                }
            }
        }
    }
}

/// Replies to `requestid` of `to` (on `to`'s own topic when its request said `direct`).
/// A reply too large to send becomes a `too_large` error, so the caller learns why instead
/// of waiting for its timeout.
pub(crate) async fn send_reply(
    ctx: &Context,
    to: &str,
    requestid: &str,
    direct: bool,
    result: Result<Value, NodeError>,
) {
    reply(ctx, to, requestid, direct, result, Lane::Queue);
}

/// Which way a reply goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Behind what waits to be sent.
    Queue,
    /// Ahead of it: replies to the built-ins.
    First,
}

/// [`send_reply`] on `lane`.
pub(crate) fn reply(
    ctx: &Context,
    to: &str,
    requestid: &str,
    direct: bool,
    result: Result<Value, NodeError>,
    lane: Lane,
) {
    let envelope = |result: Result<Value, NodeError>| {
        let mut env = Envelope::new(ctx.name(), to);
        env.requestid = Some(requestid.to_owned());
        // Read by `Shared::route`: whether the request asked for its reply there.
        env.direct = direct;
        match result {
            Ok(v) => env.reply = Some(v),
            Err(e) => env.error = Some(e),
        }
        env
    };
    let env = envelope(result);
    if to == ctx.name() {
        // `reply` is subscribed "no local": a reply to ourselves is handed over here.
        ctx.shared.deliver_reply(env.clone());
        return;
    }
    let send = |env| match lane {
        Lane::Queue => ctx.shared.publish_soon(topics::REPLY, env),
        Lane::First => ctx.shared.publish_first(topics::REPLY, env),
    };
    let sent = match send(env) {
        Err(CallError::Encode(EncodeError::TooLarge { size, limit })) => {
            tracing::warn!(node = %ctx.name(), to, requestid, "a reply of {size} bytes exceeds the limit of {limit}: sent too_large instead");
            let err = NodeError::too_large(format!(
                "the reply of {size} bytes exceeds the largest message of {limit} bytes; ask for less (a shorter range, a smaller page)"
            ))
            .with_details(json!({ "size": size, "limit": limit }));
            send(envelope(Err(err)))
        }
        other => other,
    };
    if let Err(e) = sent {
        tracing::warn!(node = %ctx.name(), "cannot send a reply: {}", crate::error::error_chain(&e));
    }
}

/// Answers a message on `request` that is not a valid envelope but names this node, its
/// sender and a request id: `invalid_request`, echoing the id as it came (a number stays a
/// number), so the caller is told instead of left waiting. `false` when it cannot be
/// answered (no sender, no id, not addressed to this node alone).
///
/// Where the topic names the sender (`sender`), the payload's `from` must be it: the
/// reply's topic is made of it.
pub(crate) async fn answer_malformed(
    ctx: &Context,
    payload: &[u8],
    sender: Option<&str>,
    why: &str,
) -> bool {
    // A request nested deeper than the parser allows is still answered: its top-level
    // fields are read without descending into the rest.
    let Some(map) = serde_json::from_slice::<Map<String, Value>>(payload)
        .ok()
        .or_else(|| super::shallow::scalar_fields(payload))
    else {
        return false;
    };
    let (Some(Value::String(from)), Some(requestid)) = (map.get("from"), map.get("requestid"))
    else {
        return false;
    };
    let addressed = map.get("to").and_then(Value::as_str) == Some(ctx.name());
    let id_ok = matches!(requestid, Value::String(_) | Value::Number(_));
    if from.is_empty() || from == ctx.name() || !addressed || !id_ok {
        return false;
    }
    if sender.is_some_and(|s| s != from) {
        return false;
    }
    let ts = ctx.shared.clock.next();
    let mut answer = Envelope::new(ctx.name(), from.as_str());
    answer.direct = map.get("direct") == Some(&Value::Bool(true));
    let topic = ctx.shared.route(topics::REPLY, &mut answer);
    let reply = json!({
        "timestamp": ts.as_secs_f64(),
        "UTC": ts.utc_string(),
        "from": ctx.name(),
        "to": from,
        "requestid": requestid,
        "reply": null,
        "error": NodeError::invalid_request(format!("the message is not a valid request: {why}")),
    });
    let mut reply = reply;
    if answer.direct {
        reply["direct"] = Value::Bool(true);
    }
    let Ok(payload) = serde_json::to_vec(&reply) else {
        return false;
    };
    ctx.shared.send_soon(Outgoing {
        topic,
        payload: payload.into(),
        qos: ctx.shared.control_qos,
        retain: false,
    });
    true
}
