//! Running one job: the measurement loop through labd, progress, the evaluation and the
//! stored result. A job never holds a request open: `start` returns once the job is planned.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqttcal_core::clock::Timestamp;
use mqttcal_core::{error_chain, Context, NodeError};
use mqttcal_messages::{CalibrationRecord, JobRecord, LogEntry, References, ResultRecord};
use mqttcal_metrology::{Polarity, PolarityReading};
use serde_json::{json, Value};

use super::evaluate::{evaluate, Deviations};
use super::procedure::{OnViolation, Procedure};
use super::{Job, State};

/// How a job ended early.
#[derive(Debug)]
pub(super) enum Stop {
    /// `cancel` was called.
    Cancelled,
    /// Anything else: the reason, for the job record and the logbook.
    Failed(String),
}

impl From<NodeError> for Stop {
    fn from(e: NodeError) -> Self {
        Stop::Failed(format!("{}: {}", e.code, e.message))
    }
}

/// Lab conditions seen during a job.
#[derive(Debug, Default)]
struct Conditions {
    temperature: Vec<f64>,
    humidity: Vec<f64>,
    pressure: Vec<f64>,
    violations: Vec<String>,
}

impl Conditions {
    fn record(&mut self, env: &Value, p: &Procedure) {
        let limits = &p.limits;
        for (name, list, limit) in [
            ("temperature", &mut self.temperature, limits.temperature),
            ("humidity", &mut self.humidity, limits.humidity),
            ("pressure", &mut self.pressure, limits.pressure),
        ] {
            let Some(v) = env.get(name).and_then(Value::as_f64) else {
                continue;
            };
            list.push(v);
            if let Some([lo, hi]) = limit {
                if !(lo..=hi).contains(&v) && self.violations.len() < 20 {
                    self.violations
                        .push(format!("{name} {v} outside [{lo}, {hi}]"));
                }
            }
        }
    }

    /// The largest deviations from 23 °C and 1013.25 hPa seen, else the procedure's
    /// limits', else 1 K and 10 hPa.
    fn deviations(&self, p: &Procedure) -> Deviations {
        let widest = |seen: &[f64], limit: Option<[f64; 2]>, centre: f64, otherwise: f64| {
            let seen = seen.iter().map(|v| (v - centre).abs()).reduce(f64::max);
            seen.or_else(|| limit.map(|[lo, hi]| (lo - centre).abs().max((hi - centre).abs())))
                .unwrap_or(otherwise)
        };
        Deviations {
            temperature: widest(&self.temperature, p.limits.temperature, 23.0, 1.0),
            pressure: widest(&self.pressure, p.limits.pressure, 1013.25, 10.0),
        }
    }

    fn summary(&self) -> Value {
        let span = |v: &[f64]| {
            if v.is_empty() {
                return Value::Null;
            }
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            json!({"min": min, "max": max, "mean": v.iter().sum::<f64>() / v.len() as f64})
        };
        json!({
            "temperature": span(&self.temperature),
            "humidity": span(&self.humidity),
            "pressure": span(&self.pressure),
            "violations": self.violations,
        })
    }
}

/// Sends a logbook entry about `job`; a logbook that is away costs the entry a warning.
pub(super) async fn log(ctx: &Context, job: &str, kind: &str, tags: &[&str], text: String) {
    let refs = References {
        job: Some(job.to_owned()),
        ..References::default()
    };
    log_refs(ctx, refs, kind, tags, text).await;
}

/// A logbook entry with the references given (e.g. the standard of a check-in).
pub(super) async fn log_refs(
    ctx: &Context,
    refs: References,
    kind: &str,
    tags: &[&str],
    text: String,
) {
    let entry = LogEntry {
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        refs,
        ..LogEntry::new(kind, text)
    };
    if let Err(e) = ctx.send(LogEntry::TOPIC, "*", &entry).await {
        tracing::warn!(kind, "cannot send a logbook entry: {}", error_chain(&e));
    }
}

/// Stores the job's record with `status` (datad logs the change).
pub(super) async fn save_job(
    ctx: &Context,
    state: &State,
    job: &Job,
    status: &str,
    extra: Value,
) -> Result<(), NodeError> {
    let mut body = json!({
        "node": ctx.name(),
        "reference": job.procedure.reference,
        "at": job.at,
        "equipment": *job.equipment.lock().unwrap_or_else(|e| e.into_inner()),
    });
    if let (Value::Object(b), Some(o)) = (&mut body, &job.operator) {
        b.insert("operator".into(), json!(o));
    }
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let record = JobRecord {
        id: job.id.clone(),
        procedure: Some(job.procedure.name.clone()),
        item: Some(job.item.clone()),
        customer: job.customer.clone(),
        status: status.to_owned(),
        config_hash: Some(job.config_hash.clone()),
        body: Some(body),
    };
    ctx.request_timeout(
        &state.config.datad,
        "save_job",
        &record,
        super::checks::PEER_TIMEOUT,
    )
    .await
    .map(|_| ())
    .map_err(|e| NodeError::link(format!("datad: {}", error_chain(&e))))
}

/// Publishes progress: step `i` of `n`.
async fn progress(ctx: &Context, job: &Job, text: &str) {
    let i = job.done.load(Ordering::Relaxed);
    let n = job.procedure.steps();
    // From the job's start, not from its planning: a planned job's wait is no part of it.
    let elapsed = (Timestamp::now().as_secs_f64() - job.at).max(0.0);
    let mut m = json!({"job": job.id, "i": i, "n": n, "elapsed_s": elapsed, "text": text});
    if i > 0 && i < n && !job.cancel.load(Ordering::Relaxed) {
        m["eta_s"] = json!(elapsed / f64::from(i) * f64::from(n.saturating_sub(i)));
    }
    let _ = ctx.send(super::PROGRESS, "*", &m).await;
}

/// The job from its planned time to its end, whatever happens: the record says how it
/// ended and the logbook has an entry.
pub(super) async fn run(ctx: Context, state: Arc<State>, job: Arc<Job>) {
    let outcome = measure_and_evaluate(&ctx, &state, &job).await;
    job.ending.store(true, Ordering::Relaxed);
    // Whatever happened, labd is free again (a lease that cannot be released lapses).
    let _ = ctx
        .request(&state.config.labd, "release", json!({ "job": job.id }))
        .await;
    let (status, text, extra) = match outcome {
        Ok((result_id, text, environment)) => (
            "done",
            text,
            json!({"result": result_id, "environment": environment}),
        ),
        Err(Stop::Cancelled) => (
            "cancelled",
            if Timestamp::now().as_secs_f64() < job.at {
                format!("job {} cancelled before its planned start", job.id)
            } else if job.done.load(Ordering::Relaxed) == 0 {
                format!("job {} cancelled before its first step ended", job.id)
            } else {
                format!("job {} cancelled between readings", job.id)
            },
            json!({}),
        ),
        Err(Stop::Failed(why)) => (
            "failed",
            format!("job {} failed: {why}", job.id),
            json!({"reason": why}),
        ),
    };
    // datad may be out for a while: the end is worth waiting for (up to 2 minutes), or the
    // next start of cald marks the job aborted.
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut pause = Duration::from_millis(200);
    while let Err(e) = save_job(&ctx, &state, &job, status, extra.clone()).await {
        if Instant::now() > give_up {
            tracing::warn!(job = %job.id, "cannot store the job's end ({status}): {}", e.message);
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    log(&ctx, &job.id, "job", &["job", status], text).await;
    progress(&ctx, &job, status).await;
    state
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
}

async fn measure_and_evaluate(
    ctx: &Context,
    state: &State,
    job: &Job,
) -> Result<(i64, String, Value), Stop> {
    let wait = job.at - Timestamp::now().as_secs_f64();
    if wait > 0.0 {
        progress(ctx, job, "planned").await;
        cancellable_sleep(job, Duration::from_secs_f64(wait.min(366.0 * 86_400.0))).await?;
    }
    let p = &job.procedure;
    let per_reading = p.nplc / 50.0 + 0.1;
    // A step is measured in calls of about 10 s at most, so `cancel` and the lease's
    // renewal wait no longer than that, however long the step.
    let chunk = ((10.0 / per_reading).floor() as u32).clamp(1, p.readings);
    let step_timeout =
        Duration::from_secs_f64(30.0 + 3.0 * per_reading * f64::from(chunk) + p.settle_s);
    // The lease outlives a call by far, and is renewed every third of it for as long as
    // the job runs, waits included.
    let lease_s = (4.0 * step_timeout.as_secs_f64()).clamp(60.0, 3600.0);
    lease(ctx, state, job, lease_s).await?;
    let keeper = LeaseKeeper::start(ctx, state, job, lease_s);
    // The register may have changed since the job was planned, or while it waited for
    // labd (a reference found overdue, an instrument replaced): checked again now, and
    // once more after the last reading.
    recheck(ctx, state, job, p.expected_seconds(), "at its start").await?;
    save_job(ctx, state, job, "running", json!({})).await?;
    let mut conditions = Conditions::default();
    let mut groups = Vec::with_capacity(p.groups as usize);
    for g in 0..p.groups {
        let mut group = Vec::with_capacity(4 * p.readings as usize);
        for pol in [
            Polarity::Positive,
            Polarity::Negative,
            Polarity::Negative,
            Polarity::Positive,
        ] {
            if job.cancel.load(Ordering::Relaxed) {
                return Err(Stop::Cancelled);
            }
            if p.settle_s > 0.0 {
                cancellable_sleep(job, Duration::from_secs_f64(p.settle_s)).await?;
            }
            let text = format!("group {} of {}", g + 1, p.groups);
            let mut left = p.readings;
            while left > 0 {
                if job.cancel.load(Ordering::Relaxed) {
                    return Err(Stop::Cancelled);
                }
                keeper.check()?;
                let n = left.min(chunk);
                let params = json!({
                    "mode": "differential",
                    "src": [job.item, p.reference],
                    "pol": if pol == Polarity::Positive { "+" } else { "-" },
                    "repetitions": n,
                    "NPLC": p.nplc,
                    "Ndigits": p.ndigits,
                    "range": p.range,
                    "job": job.id,
                });
                let reply = measure(ctx, state, job, &params, step_timeout, &text).await?;
                if let Some(env) = reply.get("environment").filter(|e| e.is_object()) {
                    conditions.record(env, p);
                }
                if !conditions.violations.is_empty() && p.limits.on_violation == OnViolation::Abort
                {
                    return Err(Stop::Failed(format!(
                        "environment outside the procedure's limits: {}",
                        conditions.violations.join("; ")
                    )));
                }
                let readings = reply["readings"].as_array().cloned().unwrap_or_default();
                if readings.len() != n as usize {
                    return Err(Stop::Failed(format!(
                        "labd returned {} readings, {n} asked",
                        readings.len(),
                    )));
                }
                for r in readings {
                    let (Some(value), Some(t)) = (r["value"].as_f64(), r["acquired"].as_f64())
                    else {
                        return Err(Stop::Failed(
                            "labd returned a reading without value or time".into(),
                        ));
                    };
                    group.push(PolarityReading {
                        t,
                        polarity: pol,
                        value,
                    });
                }
                left -= n;
            }
            job.done.fetch_add(1, Ordering::Relaxed);
            progress(ctx, job, &text).await;
        }
        groups.push(group);
    }
    drop(keeper);
    if job.cancel.load(Ordering::Relaxed) {
        return Err(Stop::Cancelled);
    }
    recheck(ctx, state, job, 0.0, "at its end").await?;
    // The readings are worth keeping through a datad outage: up to 2 minutes.
    let history = patiently(|| {
        ctx.request_as::<Vec<CalibrationRecord>>(
            &state.config.datad,
            "history",
            json!({"id": p.reference}),
        )
    })
    .await
    .map_err(|e| Stop::Failed(format!("datad: {}", error_chain(&e))))?;
    let outcome = evaluate(&groups, &history, &p.terms, conditions.deviations(p))
        .map_err(|e| Stop::Failed(format!("evaluation: {e}")))?;
    let environment_ok = conditions.violations.is_empty();
    let e = &outcome.evaluation;
    let record = ResultRecord {
        job: job.id.clone(),
        quantity: "DC voltage".into(),
        standard: Some(job.item.clone()),
        value: outcome.value,
        unit: "V".into(),
        standard_uncertainty: e.combined_u,
        coverage_factor: e.k,
        expanded_uncertainty: e.expanded,
        effective_dof: e.dof_eff,
        budget: outcome.budget.clone(),
        environment_ok: Some(environment_ok),
        software_version: format!("mqttcal-nodes {}", env!("CARGO_PKG_VERSION")),
        config_hash: Some(job.config_hash.clone()),
        amends: None,
        reason: None,
        recorded_by: Some(ctx.name().to_owned()),
        equipment: job
            .equipment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        environment: Some(conditions.summary()),
    };
    job.ending.store(true, Ordering::Relaxed);
    let stored = store_result(ctx, state, &record).await?;
    let id = stored["id"].as_i64().unwrap_or(-1);
    let flag = if environment_ok {
        String::new()
    } else {
        format!(" (flagged: {})", conditions.violations.join("; "))
    };
    Ok((
        id,
        format!(
            "job {} done: {} = {} V, U = {} V (k = {:.2}){flag}",
            job.id,
            job.item,
            outcome.reported.value_text(),
            outcome.reported.expanded_text(),
            e.k
        ),
        conditions.summary(),
    ))
}

/// Whether `e` is labd's answer that its measurement slot, or its room for calls, is taken
/// for a moment (a `busy` naming no job): worth trying again, unlike a lease held by
/// another job.
fn slot_taken(e: &mqttcal_core::CallError) -> bool {
    matches!(e, mqttcal_core::CallError::Remote { error, .. }
        if error.code == mqttcal_core::ErrorCode::Busy
            && error.details.as_ref().and_then(|d| d.get("job")).is_none())
}

/// The job named by a `busy` for a lease in this node's name, and whether this cald runs
/// it.
fn lease_in_my_name(
    e: &mqttcal_core::CallError,
    ctx: &Context,
    state: &State,
) -> Option<(String, bool)> {
    let mqttcal_core::CallError::Remote { error, .. } = e else {
        return None;
    };
    let d = error.details.as_ref()?;
    if error.code != mqttcal_core::ErrorCode::Busy || d["holder"] != ctx.name() {
        return None;
    }
    let other = d["job"].as_str()?;
    let mine = state
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(other);
    Some((other.to_owned(), mine))
}

/// The job of this cald that holds labd's lease, when `e` says one does.
fn own_job_holds(e: &mqttcal_core::CallError, ctx: &Context, state: &State) -> Option<String> {
    lease_in_my_name(e, ctx, state).and_then(|(job, mine)| mine.then_some(job))
}

/// The job of a lease held in this node's name that this cald does not run.
fn ghost_lease(e: &mqttcal_core::CallError, ctx: &Context, state: &State) -> Option<String> {
    lease_in_my_name(e, ctx, state).and_then(|(job, mine)| (!mine).then_some(job))
}

/// How long a job waits for labd's slot before it gives up: a measurement somebody began
/// before the job took its lease ends by then, or labd is flooded.
const SLOT_WAIT: Duration = Duration::from_secs(600);

/// Calls labd's `cap` for the job, trying again while its slot is taken (see
/// [`slot_taken`]) for up to [`SLOT_WAIT`], with progress at least every 5 s meanwhile.
/// Any other error ends the job, its text after `failure`.
async fn call_labd(
    ctx: &Context,
    state: &State,
    job: &Job,
    (cap, params): (&str, &Value),
    timeout: Duration,
    (text, failure): (&str, &str),
) -> Result<Value, Stop> {
    let give_up = Instant::now() + SLOT_WAIT;
    let mut pause = Duration::from_millis(50);
    let mut last_tick = Instant::now();
    loop {
        let call = ctx.request_timeout(&state.config.labd, cap, params, timeout);
        tokio::pin!(call);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let outcome = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tick.tick() => progress(ctx, job, text).await,
            }
        };
        match outcome {
            // A lease in this cald's name for a job it does not run (left by a lost
            // release, or forged): ended, then tried again.
            Err(e) if ghost_lease(&e, ctx, state).is_some() => {
                let ghost = ghost_lease(&e, ctx, state).unwrap_or_default();
                tracing::warn!(job = %job.id, "labd holds a lease for job {ghost} in this node's name, which runs no such job: releasing it");
                let _ = ctx
                    .request(&state.config.labd, "release", json!({ "job": ghost }))
                    .await;
                cancellable_sleep(job, Duration::from_millis(100)).await?;
            }
            // Another job of this cald holds labd: this one queues behind it, however long.
            Err(e) if own_job_holds(&e, ctx, state).is_some() => {
                let other = own_job_holds(&e, ctx, state).unwrap_or_default();
                if last_tick.elapsed() >= Duration::from_secs(5) {
                    last_tick = Instant::now();
                    progress(ctx, job, &format!("{text}: waiting for job {other} to end")).await;
                }
                cancellable_sleep(job, Duration::from_millis(500)).await?;
            }
            Err(e) if slot_taken(&e) && Instant::now() < give_up => {
                if last_tick.elapsed() >= Duration::from_secs(5) {
                    last_tick = Instant::now();
                    progress(ctx, job, &format!("{text}: waiting for labd ({e})")).await;
                }
                cancellable_sleep(job, pause).await?;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Ok(v) => return Ok(v),
            Err(e) => return Err(Stop::Failed(format!("{failure}{}", error_chain(&e)))),
        }
    }
}

/// One `measure` call of a step; anything but success ends the job.
async fn measure(
    ctx: &Context,
    state: &State,
    job: &Job,
    params: &Value,
    timeout: Duration,
    text: &str,
) -> Result<Value, Stop> {
    call_labd(
        ctx,
        state,
        job,
        ("measure", params),
        timeout,
        (text, "labd: "),
    )
    .await
}

/// Checks the job's equipment against the register for `ahead` more seconds; the result
/// will list it as it is now. A failure ends the job, its reason after `when`.
async fn recheck(
    ctx: &Context,
    state: &State,
    job: &Job,
    ahead: f64,
    when: &str,
) -> Result<(), Stop> {
    let end = Timestamp::now().as_secs_f64() + ahead;
    let used = super::checks::check_equipment(ctx, state, &job.id, &job.procedure.reference, end)
        .await
        .map_err(|e| Stop::Failed(format!("{when}: {}", e.message)))?;
    *job.equipment.lock().unwrap_or_else(|e| e.into_inner()) = used;
    Ok(())
}

/// `call` until it succeeds or is answered with an error, for up to 2 minutes: a node that
/// does not answer (restarting, a broker outage) gets that long to come back.
async fn patiently<T, F, Fut>(mut call: F) -> Result<T, mqttcal_core::CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, mqttcal_core::CallError>>,
{
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut pause = Duration::from_millis(200);
    loop {
        match call().await {
            Err(e @ mqttcal_core::CallError::Remote { .. }) => return Err(e),
            Err(e) if Instant::now() > give_up => return Err(e),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            ok => return ok,
        }
    }
}

/// Stores the result through datad, patiently; a store that happened although its reply
/// was lost is found, not repeated.
async fn store_result(ctx: &Context, state: &State, record: &ResultRecord) -> Result<Value, Stop> {
    let datad = &state.config.datad;
    let mut first = true;
    patiently(|| {
        let retry = !std::mem::replace(&mut first, false);
        async move {
            if retry {
                let stored = ctx
                    .request(datad, "results", json!({ "id": record.job }))
                    .await?;
                if let Some(r) = stored.as_array().and_then(|a| a.first()) {
                    return Ok(r.clone());
                }
            }
            ctx.request(datad, "save_result", record).await
        }
    })
    .await
    .map_err(|e| {
        Stop::Failed(format!(
            "datad did not store the result: {}",
            error_chain(&e)
        ))
    })
}

/// Renews labd's lease for a job every third of its length, in a task of its own, for as
/// long as it lives; says whether a renewal failed.
struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

impl LeaseKeeper {
    fn start(ctx: &Context, state: &State, job: &Job, seconds: f64) -> Self {
        let failed = Arc::new(std::sync::Mutex::new(None));
        let (ctx, labd, id, out) = (
            ctx.clone(),
            state.config.labd.clone(),
            job.id.clone(),
            failed.clone(),
        );
        let task = tokio::spawn(async move {
            let params = json!({ "job": id, "seconds": seconds });
            loop {
                tokio::time::sleep(Duration::from_secs_f64(seconds / 3.0)).await;
                // labd's room for calls may be full for a moment: a few tries.
                let mut result = ctx.request(&labd, "lease", &params).await;
                for _ in 0..20 {
                    match &result {
                        Err(e) if slot_taken(e) => {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            result = ctx.request(&labd, "lease", &params).await;
                        }
                        _ => break,
                    }
                }
                if let Err(e) = result {
                    *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(error_chain(&e));
                    return;
                }
            }
        });
        Self { task, failed }
    }

    /// `Failed` when a renewal failed: the job no longer holds labd.
    fn check(&self) -> Result<(), Stop> {
        match self.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(why) => Err(Stop::Failed(format!("labd: the job lost its lease: {why}"))),
            None => Ok(()),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Takes labd for the job (waiting while its slot is taken or another job of ours holds it).
async fn lease(ctx: &Context, state: &State, job: &Job, seconds: f64) -> Result<(), Stop> {
    let params = json!({ "job": job.id, "seconds": seconds });
    call_labd(
        ctx,
        state,
        job,
        ("lease", &params),
        mqttcal_core::DEFAULT_TIMEOUT,
        ("taking labd", "labd: cannot take it for the job: "),
    )
    .await
    .map(drop)
}

/// Sleeps `d`, waking every 200 ms to see whether the job was cancelled.
async fn cancellable_sleep(job: &Job, d: Duration) -> Result<(), Stop> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if job.cancel.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        tokio::time::sleep((end - Instant::now()).min(Duration::from_millis(200))).await;
    }
    Ok(())
}
