//! `stop`: asks a node to stop and waits for its `bye`.

use std::time::{Duration, Instant};

use clap::Args;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::error_chain;
use mqttcal_core::topics::{Topics, ANNOUNCE};
use mqttcal_core::transport::{Event, Events, QoS, SessionSpec, Subscription, Transport};
use serde_json::Map;

use super::connect::Settings;
use super::Failure;

/// Arguments of `stop`.
#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// The node to stop, or `*` for every node under the prefix
    node: String,
    /// Seconds to wait for the node's answer, then for its `bye`
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
}

pub(crate) async fn stop(a: StopArgs, settings: Settings) -> Result<(), Failure> {
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        return Err(Failure::usage(
            "--timeout must be a positive number of seconds",
        ));
    }
    let wait = Duration::from_secs_f64(a.timeout.min(86_400.0));
    // Listening on `announce` before the stop goes out, so the `bye` cannot slip by.
    let topics = Topics::with_layout(&settings.config.prefix, settings.config.layout);
    let subs = topics
        .filters(ANNOUNCE, "")
        .into_iter()
        .map(|f| Subscription::new(f, QoS::AtMostOnce))
        .collect();
    let client = settings.client().await?;
    let announce = settings
        .quick_transport()
        .connect(SessionSpec::new(
            format!("cli-stop-{}", std::process::id()),
            subs,
        ))
        .await;
    let mut announce = match announce {
        Ok(link) => Some(link),
        Err(e) => {
            client.close().await;
            return Err(settings.unreachable(&e).await);
        }
    };
    let result = stop_with(
        client.context(),
        &settings,
        &a.node,
        wait,
        announce.as_mut().map(|l| &mut l.events),
    )
    .await;
    client.close().await;
    if let Some(link) = announce {
        let _ = link.publisher.disconnect().await;
    }
    result
}

/// Asks `node` to stop and says what happened: it stopped (its `bye` came), it refused, or
/// nobody answered (the report's stop goes out on `system` then too, for a node that only
/// listens there). `*` is the report's broadcast, which nobody confirms.
async fn stop_with(
    ctx: &mqttcal_core::Context,
    settings: &Settings,
    node: &str,
    wait: Duration,
    announce: Option<&mut Events>,
) -> Result<(), Failure> {
    let broadcast = || async {
        ctx.send("system", node, serde_json::json!({ "cmd": "stop" }))
            .await
            .map_err(|e| Failure::reply(error_chain(&e)))
    };
    if node == "*" {
        broadcast().await?;
        println!("stop sent on `system` to every node under this prefix on this broker (a bridge does not carry it into a lab); each says `bye` on `announce` as it goes (`mqttcal watch announce`)");
        return Ok(());
    }
    let asked = Instant::now();
    match ctx.request_timeout(node, "stop", Map::new(), wait).await {
        Ok(_) => println!("{node}: stopping"),
        Err(mqttcal_core::CallError::Remote { error, .. })
            if error.code == mqttcal_core::ErrorCode::UnknownCapability =>
        {
            broadcast().await?;
            println!("{node} takes no `stop` request: the report's stop went out on `system`");
        }
        Err(mqttcal_core::CallError::Remote { error, .. }) => {
            return Err(Failure::reply(format!(
                "{node} did not stop: {} ({})",
                error.message,
                error.code.as_str()
            )))
        }
        Err(_) => {
            broadcast().await?;
            let why = super::explain::silent_node(ctx, settings, node, "stop", wait).await;
            return Err(Failure::reply(format!(
                "{why} (the report's stop went out on `system` too)"
            )));
        }
    }
    let limit = settings.config.mqtt.max_message_size;
    let said_bye = match announce {
        Some(events) => bye_within(events, node, limit, wait).await,
        None => false,
    };
    match said_bye {
        true => {
            println!(
                "{node}: stopped (said bye {:.1} s after it was asked)",
                asked.elapsed().as_secs_f64()
            );
            Ok(())
        }
        false => Err(Failure::reply(format!(
            "{node} did not say `bye` within {} s of being asked to stop: it may still be closing (`mqttcal ping {node}`)",
            wait.as_secs_f64()
        ))),
    }
}

/// Whether `node` says `bye` on `announce` within `wait`.
async fn bye_within(events: &mut Events, node: &str, limit: usize, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) | Err(_) => return false,
        };
        let Event::Message { payload, .. } = ev else {
            continue;
        };
        let Ok(env) = Envelope::decode(&payload, limit) else {
            continue;
        };
        if env.from == node && env.message.as_deref() == Some("bye") && !env.closes_earlier_run() {
            return true;
        }
    }
}
