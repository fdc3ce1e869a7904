//! After a crash: jobs that a cald of the same name left `planned` or `running` in datad
//! are marked `aborted`, with a logbook entry. They are not resumed: nobody can vouch for
//! the standards and the lab across a gap of unknown length, and a result is only ever
//! computed from the complete groups of one uninterrupted run.

use std::sync::Arc;
use std::time::Duration;

use mqttcal_core::{error_chain, Context};
use serde_json::{json, Value};

use super::run::log;
use super::State;

/// Looks for such jobs until datad answers once, then ends.
pub(super) async fn run(ctx: Context, state: Arc<State>) {
    let mut wait = Duration::from_millis(200);
    loop {
        match abort_left_over(&ctx, &state).await {
            Ok(n) => {
                if n > 0 {
                    tracing::warn!("{n} job(s) left by an earlier run marked aborted");
                }
                return;
            }
            Err(e) => {
                tracing::debug!("datad not reachable for the job recovery yet: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn abort_left_over(ctx: &Context, state: &State) -> Result<usize, String> {
    let mut n = 0;
    for status in ["running", "planned"] {
        let jobs = ctx
            .request(
                &state.config.datad,
                "jobs",
                json!({ "status": status, "limit": 10000 }),
            )
            .await
            .map_err(|e| error_chain(&e))?;
        for job in jobs.as_array().into_iter().flatten() {
            let mine = job["body"]["node"].as_str() == Some(ctx.name());
            let Some(id) = job["id"].as_str().filter(|_| mine) else {
                continue;
            };
            if state
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(id)
            {
                continue;
            }
            let mut record = job.clone();
            if let Value::Object(m) = &mut record {
                m.remove("created_at");
                m.remove("updated_at");
                m.insert("status".into(), "aborted".into());
                if let Some(Value::Object(body)) = m.get_mut("body") {
                    body.insert(
                        "reason".into(),
                        format!(
                            "the job was still {status} in the record when cald started again \
                             (cald stopped during it, or could not store its end); no result"
                        )
                        .into(),
                    );
                }
            }
            ctx.request(&state.config.datad, "save_job", &record)
                .await
                .map_err(|e| error_chain(&e))?;
            // Its lease on labd would lapse by itself; end it now so new jobs need not wait.
            let _ = ctx
                .request(&state.config.labd, "release", json!({ "job": id }))
                .await;
            log(
                ctx,
                id,
                "job",
                &["job", "aborted"],
                format!(
                    "job {id} aborted: still {status} in the record when cald started again \
                     (cald stopped during it, or could not store its end); no result"
                ),
            )
            .await;
            n += 1;
        }
    }
    Ok(n)
}
