//! `follow JOB`: a calibration job's progress as a bar, then how it ended.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use mqttcal_core::error_chain;
use serde_json::{json, Value};

use super::connect::Settings;
use super::Failure;

/// Arguments of `follow`.
#[derive(Debug, Args)]
pub(crate) struct FollowArgs {
    /// The job's id
    job: String,
    /// The datad node that keeps the job's record
    #[arg(long, default_value = "datad")]
    datad: String,
    /// Give up (exit 3) after this many seconds without a sign that the job still runs:
    /// no progress from its cald, and cald not listing it
    #[arg(long, default_value_t = 120.0, value_name = "SECONDS")]
    give_up: f64,
}

/// The statuses a job ends in.
const FINAL: &[&str] = &["done", "failed", "cancelled", "aborted"];

/// `[########............]  7/16  group 2 of 4  21 s, about 27 s left`.
pub(crate) fn bar(i: u64, n: u64, elapsed: f64, eta: Option<f64>, text: &str) -> String {
    const WIDTH: u64 = 24;
    let filled = (i.min(n).saturating_mul(WIDTH))
        .checked_div(n)
        .unwrap_or(0)
        .min(WIDTH);
    let left = eta.map_or(String::new(), |e| format!(", about {e:.0} s left"));
    format!(
        "[{}{}] {i:>3}/{n}  {text}  {elapsed:.0} s{left}",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize)
    )
}

/// The bar of a progress message's fields (`i`, `n`, `elapsed_s`, `eta_s`, `text`), its
/// text made safe for a terminal.
pub(crate) fn bar_of(f: &serde_json::Map<String, Value>) -> String {
    bar(
        f.get("i").and_then(Value::as_u64).unwrap_or(0),
        f.get("n").and_then(Value::as_u64).unwrap_or(0),
        f.get("elapsed_s").and_then(Value::as_f64).unwrap_or(0.0),
        f.get("eta_s").and_then(Value::as_f64),
        &super::terminal::safe(
            f.get("text").and_then(Value::as_str).unwrap_or_default(),
            60,
        ),
    )
}

pub(crate) async fn follow(a: FollowArgs, settings: Settings) -> Result<(), Failure> {
    // Subscribed, on the same connection, before the first look at the job, so no step
    // falls in between.
    let (client, mut progress) = settings
        .client_listening(&[mqttcal_core::topics::PROGRESS])
        .await?;
    let ctx = client.context();
    let status = |ctx: mqttcal_core::Context, datad: String, job: String| async move {
        ctx.request(&datad, "job", json!({ "id": job })).await
    };
    let first = status(ctx.clone(), a.datad.clone(), a.job.clone())
        .await
        .map_err(|e| Failure::reply(format!("job {}: {}", a.job, error_chain(&e))))?;
    // Progress counts only from the node that runs the job (anyone may publish on
    // `progress`).
    let cald = first["body"]["node"].as_str().unwrap_or("cald").to_owned();
    let tty = std::io::stderr().is_terminal();
    let mut ended = first["status"].as_str().is_some_and(|s| FINAL.contains(&s));
    if first["status"] == "planned" {
        if let Some(at) = first["body"]["at"].as_f64() {
            let now = mqttcal_core::clock::Timestamp::now().as_secs_f64();
            let mut when = mqttcal_core::clock::Timestamp::from_secs_f64(at.max(0.0)).utc_string();
            when.truncate(19);
            eprintln!(
                "job {} is planned for {} UTC (in {:.0} s); waiting",
                a.job,
                when.replace('T', " "),
                (at - now).max(0.0)
            );
        }
    }
    let give_up = Duration::from_secs_f64(a.give_up.clamp(1.0, 1e6));
    let mut alive = std::time::Instant::now();
    while !ended {
        match tokio::time::timeout(Duration::from_secs(5), progress.recv()).await {
            Ok(Some(env)) => {
                let f = &env.fields;
                if env.from != cald || f.get("job").and_then(Value::as_str) != Some(a.job.as_str())
                {
                    continue;
                }
                alive = std::time::Instant::now();
                let text = f.get("text").and_then(Value::as_str).unwrap_or_default();
                let line = bar_of(f);
                let mut err = std::io::stderr().lock();
                let _ = if tty {
                    write!(err, "\r{line}\x1b[K")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
                ended = FINAL.contains(&text);
            }
            Ok(None) => return Err(Failure::connect("the broker closed the connection")),
            // Quiet for a while (a cald that died says nothing, a planned job waits): look
            // at the record, and ask cald whether it still has the job.
            Err(_) => {
                if let Ok(j) = status(ctx.clone(), a.datad.clone(), a.job.clone()).await {
                    ended = j["status"].as_str().is_some_and(|s| FINAL.contains(&s));
                }
                if ended {
                    continue;
                }
                match ctx.request(&cald, "jobs", json!({})).await {
                    Ok(jobs) => {
                        let listed = jobs
                            .as_array()
                            .is_some_and(|l| l.iter().any(|j| j["job"] == a.job.as_str()));
                        if listed {
                            alive = std::time::Instant::now();
                        } else {
                            return Err(Failure::reply(format!(
                                "job {} is not finished in {}'s record, but {cald} does not run \
                                 or plan it (it ended without a record, or belongs to a cald \
                                 that stopped: that cald marks it aborted at its next start)",
                                a.job, a.datad
                            )));
                        }
                    }
                    Err(e) if alive.elapsed() >= give_up => {
                        return Err(Failure::connect(format!(
                            "no sign of job {} for {:.0} s: {cald} does not answer ({})",
                            a.job,
                            give_up.as_secs_f64(),
                            error_chain(&e)
                        )));
                    }
                    Err(e) => eprintln!(
                        "{cald} does not answer ({}); still waiting",
                        error_chain(&e)
                    ),
                }
            }
        }
    }
    if tty {
        eprintln!();
    }
    // The record may lag the last progress message by a moment.
    let mut job = first;
    for _ in 0..50 {
        job = status(ctx.clone(), a.datad.clone(), a.job.clone())
            .await
            .map_err(|e| Failure::connect(error_chain(&e)))?;
        if job["status"].as_str().is_some_and(|s| FINAL.contains(&s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results = ctx
        .request(&a.datad, "results", json!({ "id": a.job }))
        .await
        .unwrap_or(Value::Null);
    println!("{}", json!({ "job": job, "results": results }));
    if job["status"] == "done" {
        Ok(())
    } else {
        Err(Failure::silent(1))
    }
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn the_bar_fills_with_the_steps() {
        let b = bar(8, 16, 21.4, Some(27.5), "group 2 of 4");
        assert!(
            b.starts_with("[############............]   8/16  group 2 of 4  21 s, about 28 s left"),
            "{b}"
        );
        assert!(bar(0, 0, 0.0, None, "planned").starts_with("[........................]"));
        assert!(bar(20, 16, 1.0, None, "done").starts_with(&format!("[{}]", "#".repeat(24))));
    }
}
