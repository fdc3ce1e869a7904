//! Run with: cargo run -p mqttcal-examples --bin meas_logger -- mqtt://127.0.0.1:1883 meas.jsonl
//!
//! A node that keeps every reading published on `meas` in a file, one JSON line each,
//! through a durable intake: the broker keeps what arrives while the node is away (once it
//! has run once, so its persistent session `meas-logger-intake` exists), and a reading is
//! acknowledged only after its line is written. A message that is not a reading is set
//! aside, and the rest go on. Try it with the lab running:
//! `mqttcal call labd measure '{"src": "Z1", "repetitions": 3}'`, then `mqttcal stop meas-logger`.

use std::io::Write;
use std::path::PathBuf;

use mqttcal_core::config::Config;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::intake::{Commit, CommitError, Decoded, Intake};
use mqttcal_core::transport::{BoxFuture, MqttTransport};
use mqttcal_core::{Context, NodeBuilder};
use mqttcal_messages::Reading;

/// One line of the file: who sent the reading, its place in the sender's stream, the reading.
#[derive(serde::Serialize)]
struct Line {
    from: String,
    epoch: Option<u64>,
    seq: Option<u64>,
    reading: Reading,
}

/// What a message on `meas` is: a reading (envelope fields beside its own), a trigger for
/// a measuring node (`cmd`), or something that can never be a reading.
fn decode(_topic: &str, payload: &[u8]) -> Decoded<Line> {
    // The intake set aside anything over the node's size limit before this point.
    let env = match Envelope::decode(payload, usize::MAX) {
        Ok(env) => env,
        Err(e) => return Decoded::SetAside(format!("not a message: {e}")),
    };
    if env.cmd.is_some() {
        return Decoded::Skip;
    }
    match serde_json::from_value(serde_json::Value::Object(env.fields)) {
        Ok(reading) => Decoded::Item(Line {
            from: env.from,
            epoch: env.epoch,
            seq: env.seq,
            reading,
        }),
        Err(e) => Decoded::SetAside(format!("not a reading: {e}")),
    }
}

/// Appends lines to the file; a write that fails is tried again (the disk may come back).
struct File(PathBuf);

impl Commit<Line> for File {
    fn commit<'a>(
        &'a mut self,
        items: &'a [Line],
        _ctx: &'a Context,
    ) -> BoxFuture<'a, Result<(), CommitError>> {
        Box::pin(async move {
            let mut text = String::new();
            for line in items {
                let json = serde_json::to_string(line).map_err(CommitError::refused)?;
                text.push_str(&json);
                text.push('\n');
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.0)
                .map_err(CommitError::retry)?;
            f.write_all(text.as_bytes()).map_err(CommitError::retry)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.apply_process_env()?;
    let mut args = std::env::args().skip(1);
    if let Some(url) = args.next() {
        config.mqtt.apply_url(&url)?;
    }
    let path = PathBuf::from(args.next().unwrap_or_else(|| "meas.jsonl".into()));
    let intake = Intake::new(decode, File(path.clone()))
        .subscribe("meas")
        .batch(100, std::time::Duration::from_millis(50));
    let stats = intake.stats();
    let node = NodeBuilder::new("meas-logger").intake(intake).build();
    println!(
        "meas-logger on {}, writing {}; stop it with: mqttcal stop meas-logger",
        config.mqtt.url(),
        path.display()
    );
    node.run(&MqttTransport::new(config.mqtt)).await?;
    let c = stats.counters();
    println!(
        "stored {} readings, set aside {}, skipped {}",
        c.committed, c.set_aside, c.skipped
    );
    Ok(())
}
