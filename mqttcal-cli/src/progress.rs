//! The progress of a call to one node: a bar on a terminal, and a sign of life that
//! restarts the wait.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use mqttcal_core::envelope::Envelope;
use mqttcal_core::topics::{Topics, PROGRESS};
use mqttcal_core::transport::{Event, Events, Link, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::{error_chain, Context, Gather};
use serde_json::{Map, Value};

use super::connect::Settings;
use super::Failure;

/// A connection subscribed to `progress`; `None` when it cannot be had (the call then
/// goes on without a bar).
pub(crate) async fn listen(settings: &Settings) -> Option<Link> {
    let topics = Topics::with_layout(&settings.config.prefix, settings.config.layout);
    let subs = topics
        .filters(PROGRESS, "")
        .into_iter()
        .map(|f| Subscription::new(f, QoS::AtMostOnce))
        .collect();
    let id = format!("cli-progress-{}", std::process::id());
    settings
        .quick_transport()
        .connect(SessionSpec::new(id, subs))
        .await
        .ok()
}

/// Sends the request and waits for its reply, `timeout` from the start or from the last
/// progress message of `node` to us; shows the progress as a bar on a terminal.
pub(crate) async fn wait_reply(
    ctx: &Context,
    progress: Option<Link>,
    node: &str,
    capability: &str,
    params: Map<String, Value>,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<Envelope>, Failure> {
    // The request's own deadline is far: the wait below ends it.
    let far = Gather {
        timeout: Duration::from_secs(86_400 * 365),
        expect: Some(1),
    };
    let call = ctx.request_envelopes(node, capability, params, far);
    tokio::pin!(call);
    let (publisher, mut events) = match progress {
        Some(link) => (Some(link.publisher), Some(link.events)),
        None => (None, None),
    };
    let me = ctx.name().to_owned();
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    let mut idle = tokio::time::Instant::now() + timeout;
    let result = loop {
        tokio::select! {
            r = &mut call => break r.map_err(|e| Failure::reply(error_chain(&e))),
            () = tokio::time::sleep_until(idle) => break Ok(Vec::new()),
            ev = next(&mut events, limit) => {
                let Some(env) = ev else {
                    events = None;
                    continue;
                };
                if env.from != node || env.to != me {
                    continue;
                }
                idle = tokio::time::Instant::now() + timeout;
                if tty {
                    let f = &env.fields;
                    let line = super::follow::bar(
                        f.get("i").and_then(Value::as_u64).unwrap_or(0),
                        f.get("n").and_then(Value::as_u64).unwrap_or(0),
                        f.get("elapsed_s").and_then(Value::as_f64).unwrap_or(0.0),
                        f.get("eta_s").and_then(Value::as_f64),
                        f.get("text").and_then(Value::as_str).unwrap_or_default(),
                    );
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r{line}\x1b[K");
                    let _ = err.flush();
                    shown = true;
                }
            }
        }
    };
    if shown {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
    if let Some(p) = publisher {
        let _ = p.disconnect().await;
    }
    result
}

/// The next readable message, or `None` once the link is gone; never resolves without a
/// link.
async fn next(events: &mut Option<Events>, limit: usize) -> Option<Envelope> {
    let Some(ev) = events.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        if let Event::Message { payload, .. } = ev.recv().await? {
            if let Ok(env) = Envelope::decode(&payload, limit) {
                return Some(env);
            }
        }
    }
}
