//! The census: every node is asked (`ping` to `*`) for its epoch and last `seq` on `meas`,
//! soon after the start and then every ten seconds, so a loss at the tail of a burst shows
//! even when the sender's `bye` was itself dropped.

use std::time::Duration;

use mqttcal_core::intake::Injector;
use mqttcal_core::{topics, Context, Gather};

use super::ingest::Ingested;

/// How often datad asks every node for its last `seq`s.
const EVERY: Duration = Duration::from_secs(10);

/// Runs until the node stops (it is cancelled then), feeding what it learns to the intake.
pub(super) async fn run(ctx: Context, intake: Injector<Ingested>) {
    let mut wait = Duration::from_millis(500);
    loop {
        tokio::time::sleep(wait).await;
        wait = EVERY;
        let gather = Gather {
            timeout: Duration::from_secs(1),
            expect: None,
        };
        let Ok(replies) = ctx.gather("ping", serde_json::json!({}), gather).await else {
            continue;
        };
        for r in replies {
            let reply = r.reply.unwrap_or_default();
            let epoch = reply.get("epoch").and_then(serde_json::Value::as_u64);
            let last = reply
                .get("seqs")
                .and_then(|s| s.get(topics::MEAS))
                .and_then(serde_json::Value::as_u64);
            if let (Some(epoch), Some(last)) = (epoch, last) {
                let announced = Ingested::Announced {
                    origin: r.from,
                    epoch,
                    last: Some(last),
                    closed: false,
                };
                if !intake.inject(announced).await {
                    return;
                }
            }
        }
    }
}
