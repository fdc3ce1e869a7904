//! `stop`: asks a node to stop and waits for its `bye`.

use std::time::{Duration, Instant};

use clap::Args;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::error_chain;
use mqttcal_core::topics::ANNOUNCE;
use serde_json::Map;
use tokio::sync::mpsc::Receiver;

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
    // Listening on `announce` on the same connection before the stop goes out, so the
    // `bye` cannot slip by.
    let (client, mut announce) = settings.client_listening(&[ANNOUNCE]).await?;
    let result = stop_with(client.context(), &settings, &a.node, wait, &mut announce).await;
    client.close().await;
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
    announce: &mut Receiver<Envelope>,
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
            let why = super::explain::silent_node(
                ctx,
                settings,
                node,
                "stop",
                super::explain::Quiet::after(wait),
            )
            .await;
            return Err(Failure::reply(format!(
                "{why} (a stop message went out on `system` too, for a node that listens only there)"
            )));
        }
    }
    match bye_within(announce, node, wait).await {
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

/// Whether `node` says `bye` on `announce` within `wait` (in the addressed layout, the
/// topic vouches for the sender).
async fn bye_within(announce: &mut Receiver<Envelope>, node: &str, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let env = match tokio::time::timeout_at(deadline, announce.recv()).await {
            Ok(Some(env)) => env,
            Ok(None) | Err(_) => return false,
        };
        if env.from == node && env.message.as_deref() == Some("bye") && !env.closes_earlier_run() {
            return true;
        }
    }
}
