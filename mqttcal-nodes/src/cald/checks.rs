//! Check-in, check-out and the ISO/IEC 17025 checks a job passes before it is planned:
//! each refusal is a `refused` reply naming the rule, and a logbook entry.

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::Instant;

use mqttcal_core::clock::Timestamp;
use mqttcal_core::{error_chain, Context, NodeError};
use mqttcal_messages::{CalibrationRecord, Equipment, EquipmentKind, EquipmentUsed};
use serde_json::{json, Value};

use super::params::{CheckIn, ItemId, Start};
use super::run::{log, log_refs};
use super::{Job, State};
use mqttcal_messages::References;

fn datad_error(e: mqttcal_core::CallError) -> NodeError {
    match e {
        mqttcal_core::CallError::Remote { error, .. } => error,
        other => NodeError::link(format!("datad: {}", error_chain(&other))),
    }
}

/// How long a capability waits for datad or labd: well inside a caller's default 5 s, so
/// a node that is out is reported as such rather than met with the caller's own timeout.
pub(super) const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A request to `to` within [`PEER_TIMEOUT`], its reply decoded as `R`.
async fn ask<R: serde::de::DeserializeOwned>(
    ctx: &Context,
    to: &str,
    cap: &str,
    params: impl serde::Serialize,
) -> Result<R, mqttcal_core::CallError> {
    let v = ctx.request_timeout(to, cap, params, PEER_TIMEOUT).await?;
    serde_json::from_value(v).map_err(|e| mqttcal_core::CallError::Remote {
        from: to.to_owned(),
        error: NodeError::internal(format!("unexpected reply to `{cap}`: {e}")),
    })
}

/// An item of the register, `None` when datad has none by that id.
async fn equipment(ctx: &Context, state: &State, id: &str) -> Result<Option<Equipment>, NodeError> {
    match ask::<Equipment>(ctx, &state.config.datad, "equipment", json!({ "id": id })).await {
        Ok(e) => Ok(Some(e)),
        Err(mqttcal_core::CallError::Remote { error, .. })
            if error.details.as_ref().and_then(|d| d.get("reason"))
                == Some(&Value::from("not_found")) =>
        {
            Ok(None)
        }
        Err(e) => Err(datad_error(e)),
    }
}

/// A logbook reference to a standard of the register.
fn standard(id: &str) -> References {
    References {
        standard: Some(id.to_owned()),
        ..References::default()
    }
}

/// Refuses a check-out with `reason`, after a logbook entry referring to the item.
async fn refuse_item(
    ctx: &Context,
    state: &State,
    item: &str,
    reason: &str,
    text: String,
) -> NodeError {
    if let Some(unlogged) = state.refusals.admit() {
        log_refs(
            ctx,
            standard(item),
            "refusal",
            &["refusal", reason],
            format!("checkout of {item} refused: {text}{}", more(unlogged)),
        )
        .await;
    }
    NodeError::refused(text).with_details(json!({ "reason": reason, "item": item }))
}

/// The tail of a logbook entry that follows refusals left out of the logbook.
fn more(unlogged: u64) -> String {
    if unlogged == 0 {
        String::new()
    } else {
        format!(" ({unlogged} more refusal(s) before this one were not logged: over 60 a minute)")
    }
}

/// Refuses a job with `reason`, after a logbook entry (at most 60 a minute are logged: a
/// flood of bad requests must not bury the logbook; the next entry counts those left out).
async fn refuse(ctx: &Context, state: &State, job: &str, reason: &str, text: String) -> NodeError {
    if let Some(unlogged) = state.refusals.admit() {
        log(
            ctx,
            job,
            "refusal",
            &["refusal", reason],
            format!("job {job} refused: {text}{}", more(unlogged)),
        )
        .await;
    }
    NodeError::refused(text).with_details(json!({ "reason": reason, "job": job }))
}

fn valid_id(what: &str, id: &str) -> Result<(), NodeError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NodeError::invalid_params(format!(
            "`{what}` must be 1 to 64 letters, digits, `-`, `_` or `.`"
        ))
        .with_details(json!({ "field": what })))
    }
}

/// A free text of the register: 1 to 256 characters (0 when `optional`), no control
/// characters.
fn valid_text(what: &str, text: Option<&str>, optional: bool) -> Result<(), NodeError> {
    let ok = match text {
        None => optional,
        Some(t) => {
            (optional || !t.trim().is_empty())
                && t.chars().count() <= 256
                && !t.chars().any(mqttcal_messages::is_unsafe_char)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(NodeError::invalid_params(format!(
            "`{what}` must be {} to 256 characters, without control or bidirectional-override characters",
            if optional { 0 } else { 1 }
        ))
        .with_details(json!({ "field": what })))
    }
}

/// Who holds an item while its checks run (a job being planned, a check-in, a check-out):
/// nobody else may have it meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A job being planned, by its id.
    Job(String),
    /// A check-in.
    Checkin,
    /// A check-out.
    Checkout,
}

impl Holder {
    /// The refusal of anyone else who wants `item` now.
    fn refusal(&self, item: &str) -> NodeError {
        match self {
            Self::Job(job) => NodeError::refused(format!("job {job} already has `{item}`"))
                .with_details(json!({"reason": "job_running", "job": job})),
            Self::Checkin => NodeError::refused(format!("`{item}` is being checked in just now"))
                .with_details(json!({"reason": "checked_in", "item": item})),
            Self::Checkout => NodeError::refused(format!("`{item}` is being checked out just now"))
                .with_details(json!({"reason": "checked_out", "item": item})),
        }
    }
}

/// An item held while its checks run: given back when dropped (a planned job is then in
/// `jobs`, or was refused).
pub(super) struct Reservation {
    state: Arc<State>,
    item: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.state
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.item);
    }
}

/// Whether a job on `item` is ending.
fn ending_on(state: &State, item: &str) -> bool {
    state
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .any(|j| j.item == item && j.ending.load(std::sync::atomic::Ordering::Relaxed))
}

/// Takes `item` for `holder` (and a job's id, which must be new), or says who has it.
fn reserve(state: &Arc<State>, holder: Holder, item: &str) -> Result<Reservation, NodeError> {
    let jobs = state.jobs.lock().unwrap_or_else(|e| e.into_inner());
    let mut pending = state.pending.lock().unwrap_or_else(|e| e.into_inner());
    if let Holder::Job(id) = &holder {
        if jobs.contains_key(id) || pending.values().any(|h| h == &holder) {
            return Err(
                NodeError::invalid_params(format!("job `{id}` exists already"))
                    .with_details(json!({ "field": "job" })),
            );
        }
    }
    if let Some(job) = jobs.values().find(|j| j.item == item) {
        return Err(Holder::Job(job.id.clone()).refusal(item));
    }
    if let Some(other) = pending.get(item) {
        return Err(other.refusal(item));
    }
    pending.insert(item.to_owned(), holder);
    Ok(Reservation {
        state: state.clone(),
        item: item.to_owned(),
    })
}

/// The UTC date of `t`, Unix seconds.
fn days(t: f64) -> String {
    let mut s = Timestamp::from_secs_f64(t.max(0.0)).utc_string();
    s.truncate(10);
    s
}

/// Why `job` cannot be cancelled: it ended already (`details.reason` `ended`, with its
/// status), or no job has that id (`not_found`).
pub(super) async fn not_running(ctx: &Context, state: &State, job: &str) -> NodeError {
    match ask::<Value>(ctx, &state.config.datad, "job", json!({ "id": job })).await {
        Ok(record) => {
            let status = record["status"].as_str().unwrap_or("?").to_owned();
            NodeError::invalid_params(format!(
                "job `{job}` is not running or planned here: it is `{status}` in datad's record"
            ))
            .with_details(json!({ "field": "job", "reason": "ended", "status": status }))
        }
        Err(_) => NodeError::invalid_params(format!("there is no job `{job}` here"))
            .with_details(json!({ "field": "job", "reason": "not_found" })),
    }
}

/// The UTC time of `t`, Unix seconds, to the second.
fn days_time(t: f64) -> String {
    let mut s = Timestamp::from_secs_f64(t.max(0.0)).utc_string();
    s.truncate(19);
    s.replace('T', " ") + " UTC"
}

/// A job id from the time: `J-20261204-061530-1234`.
fn new_job_id() -> String {
    let s = Timestamp::now().utc_string();
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    format!("J-{}-{}-{}", &digits[..8], &digits[8..14], &digits[14..18])
}

pub(super) async fn checkin(
    ctx: &Context,
    state: &Arc<State>,
    p: CheckIn,
) -> Result<ItemId, NodeError> {
    valid_id("id", &p.id)?;
    valid_text("customer", Some(&p.customer), false)?;
    valid_text("serial", Some(&p.serial), false)?;
    valid_text("manufacturer", p.manufacturer.as_deref(), true)?;
    valid_text("model", p.model.as_deref(), true)?;
    valid_text("description", p.description.as_deref(), true)?;
    // DC voltage standards: from about 1 V (Weston cells, 1.018 V) to 1000 V, either sign.
    if !(p.nominal_value.is_finite() && (1e-3..=1100.0).contains(&p.nominal_value.abs())) {
        return Err(NodeError::invalid_params(
            "`nominal_value` must be a voltage of 1 mV to 1100 V (either sign)",
        )
        .with_details(json!({ "field": "nominal_value" })));
    }
    // Held until the register has it, so two check-ins of one id cannot both succeed.
    let _held = reserve(state, Holder::Checkin, &p.id)?;
    if let Some(e) = equipment(ctx, state, &p.id).await? {
        if e.checked_in.is_none() {
            // The lab's own equipment (a reference, an instrument): never overwritten.
            return Err(NodeError::refused(format!(
                "`{}` is the lab's own equipment in the register; a customer's item needs another id",
                p.id
            ))
            .with_details(json!({"reason": "registered", "item": p.id})));
        }
        if e.checked_out.is_none() {
            return Err(NodeError::refused(format!(
                "`{}` is checked in already (serial {})",
                p.id,
                e.serial.unwrap_or_default()
            ))
            .with_details(json!({"reason": "checked_in", "item": p.id})));
        }
    }
    let item = Equipment {
        id: p.id.clone(),
        kind: EquipmentKind::Standard,
        description: p.description,
        manufacturer: p.manufacturer,
        model: p.model,
        serial: Some(p.serial),
        owner: Some(p.customer),
        nominal_value: Some(p.nominal_value),
        unit: Some("V".into()),
        location: None,
        calibration_due: None,
        checked_in: Some(Timestamp::now().as_secs_f64()),
        checked_out: None,
    };
    ask::<Value>(ctx, &state.config.datad, "register_equipment", &item)
        .await
        .map_err(datad_error)?;
    log_refs(
        ctx,
        standard(&p.id),
        "checkin",
        &["checkin"],
        format!("{} checked in", p.id),
    )
    .await;
    Ok(ItemId { id: p.id })
}

pub(super) async fn checkout(
    ctx: &Context,
    state: &Arc<State>,
    p: ItemId,
) -> Result<ItemId, NodeError> {
    valid_id("id", &p.id)?;
    // A job that only records its end frees the item in a moment.
    let until = Instant::now() + std::time::Duration::from_secs(5);
    while Instant::now() < until && ending_on(state, &p.id) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Held until the register says `checked_out`, so no job is planned on it meanwhile.
    let _held = match reserve(state, Holder::Checkout, &p.id) {
        Ok(r) => r,
        Err(e) => {
            let details = e.details.clone().unwrap_or_default();
            let reason = details["reason"]
                .as_str()
                .unwrap_or("job_running")
                .to_owned();
            let text = match details["job"].as_str() {
                Some(job) => format!("job {job} is planned or runs on it"),
                None => e.message,
            };
            return Err(refuse_item(ctx, state, &p.id, &reason, text).await);
        }
    };
    let Some(mut e) = equipment(ctx, state, &p.id).await? else {
        return Err(
            NodeError::invalid_params(format!("no item `{}` in the register", p.id))
                .with_details(json!({ "field": "id", "reason": "not_found" })),
        );
    };
    if e.checked_in.is_none() {
        return Err(refuse_item(
            ctx,
            state,
            &p.id,
            "not_checked_in",
            "it is the lab's own equipment, never checked in".into(),
        )
        .await);
    }
    if let Some(out) = e.checked_out {
        return Err(refuse_item(
            ctx,
            state,
            &p.id,
            "checked_out",
            format!("it was checked out already at {}", days_time(out)),
        )
        .await);
    }
    e.checked_out = Some(Timestamp::now().as_secs_f64());
    ask::<Value>(ctx, &state.config.datad, "register_equipment", &e)
        .await
        .map_err(datad_error)?;
    log_refs(
        ctx,
        standard(&p.id),
        "checkout",
        &["checkout"],
        format!("{} checked out", p.id),
    )
    .await;
    Ok(ItemId { id: p.id })
}

/// The identity's serial: a 3458A's calibration string (`HP3458A CALSTR "2823A12345"`),
/// the third field of a SCPI `*IDN?` answer, else the whole text.
fn serial_of(identity: &str) -> &str {
    if let Some((_, cal)) = identity.split_once("CALSTR \"") {
        return cal.trim_end_matches('"').trim();
    }
    let fields: Vec<&str> = identity.split(',').map(str::trim).collect();
    if fields.len() == 4 {
        fields[2]
    } else {
        identity.trim()
    }
}

/// Refuses (`no_due_date`, `overdue`) equipment `what` not known to stay in calibration
/// until `end`.
async fn in_calibration(
    ctx: &Context,
    state: &State,
    id: &str,
    what: &str,
    due: Option<f64>,
    end: f64,
) -> Result<(), NodeError> {
    let (reason, text) = match due {
        None => (
            "no_due_date",
            format!("{what} has no calibration due date in the register"),
        ),
        Some(due) if due < end => (
            "overdue",
            format!(
                "{what} is due for calibration on {}, before the job's end",
                days(due)
            ),
        ),
        Some(_) => return Ok(()),
    };
    Err(refuse(ctx, state, id, reason, text).await)
}

/// The equipment a job on `reference` relies on, each checked against the register: in it,
/// in calibration until `end`, the reference with a history for its drift line, a
/// lab's own standard, and each configured instrument reporting its registered serial.
/// Checked when the job is planned and again when it starts (the register may change in
/// between); a failed check is a `refused` with a logbook entry.
pub(super) async fn check_equipment(
    ctx: &Context,
    state: &State,
    id: &str,
    reference: &str,
    end: f64,
) -> Result<Vec<EquipmentUsed>, NodeError> {
    let mut used = Vec::new();
    let Some(r) = equipment(ctx, state, reference).await? else {
        return Err(refuse(
            ctx,
            state,
            id,
            "unknown_reference",
            format!("the reference `{reference}` is not in the equipment register"),
        )
        .await);
    };
    if r.checked_in.is_some() {
        return Err(refuse(
            ctx,
            state,
            id,
            "unknown_reference",
            format!("`{reference}` is a customer's item, not one of the lab's references"),
        )
        .await);
    }
    in_calibration(
        ctx,
        state,
        id,
        &format!("the reference `{reference}`"),
        r.calibration_due,
        end,
    )
    .await?;
    used.push(EquipmentUsed {
        role: "reference".into(),
        id: reference.to_owned(),
        serial: r.serial.clone(),
        calibration_due: r.calibration_due,
        identity: None,
    });
    let history: Vec<CalibrationRecord> = ask(
        ctx,
        &state.config.datad,
        "history",
        json!({ "id": reference }),
    )
    .await
    .map_err(datad_error)?;
    if history.len() < 2 {
        return Err(refuse(ctx, state,
            id,
            "no_history",
            format!(
                "the reference `{reference}` has {} calibration(s) in its history; its drift needs 2",
                history.len()
            ),
        )
        .await);
    }
    if !state.config.instruments.is_empty() {
        let ids: Value = ask(ctx, &state.config.labd, "identify", json!({}))
            .await
            .map_err(|e| match e {
                // labd's own answer (e.g. `busy` while it measures) keeps its code.
                mqttcal_core::CallError::Remote { mut error, .. } => {
                    error.message = format!("labd: {}", error.message);
                    error
                }
                other => NodeError::link(format!("labd: {}", error_chain(&other))),
            })?;
        for (name, eq_id) in &state.config.instruments {
            let identity = ids.get(name).and_then(Value::as_str).unwrap_or_default();
            let Some(e) = equipment(ctx, state, eq_id).await? else {
                return Err(refuse(
                    ctx,
                    state,
                    id,
                    "unknown_instrument",
                    format!("instrument `{name}` maps to `{eq_id}`, which is not in the register"),
                )
                .await);
            };
            in_calibration(
                ctx,
                state,
                id,
                &format!("instrument `{name}` (`{eq_id}`)"),
                e.calibration_due,
                end,
            )
            .await?;
            let registered = e.serial.clone().unwrap_or_default();
            if registered.is_empty() || serial_of(identity) != registered.trim() {
                return Err(refuse(ctx, state,
                    id,
                    "serial_mismatch",
                    format!(
                        "instrument `{name}` identifies as `{identity}`, not serial `{registered}` of `{eq_id}` in the register"
                    ),
                )
                .await);
            }
            used.push(EquipmentUsed {
                role: name.clone(),
                id: eq_id.clone(),
                serial: Some(registered),
                calibration_due: e.calibration_due,
                identity: Some(identity.to_owned()),
            });
        }
    }
    Ok(used)
}

/// Checks everything a job relies on and stores its procedure; the job, not yet running,
/// and the hold on its id and item until it is listed in `jobs`.
pub(super) async fn plan(
    ctx: &Context,
    state: &Arc<State>,
    p: Start,
) -> Result<(Arc<Job>, Reservation), NodeError> {
    p.procedure.validate()?;
    let now = Timestamp::now().as_secs_f64();
    // A little slack for callers' clocks; a time further back is a mistake (and would
    // dodge the due-date checks).
    let at = p.at.unwrap_or(now).max(now);
    if !p.at.unwrap_or(now).is_finite()
        || p.at.is_some_and(|a| a < now - 300.0)
        || at > now + 366.0 * 86_400.0
    {
        return Err(NodeError::invalid_params(
            "`at` must be a Unix time from now (5 minutes' slack) to a year ahead",
        )
        .with_details(json!({ "field": "at" })));
    }
    // The equipment must be in calibration until the job's expected end.
    let end = at + p.procedure.expected_seconds();
    let id = match p.job {
        Some(id) => id,
        None => new_job_id(),
    };
    valid_id("job", &id)?;
    valid_id("item", &p.item)?;
    if p.item == p.procedure.reference {
        return Err(
            NodeError::invalid_params("the item cannot be its own reference")
                .with_details(json!({ "field": "procedure.reference" })),
        );
    }
    // A job on the item that only records its end now frees it in a moment: waited for
    // (up to 5 s), so a start right after a result is not refused.
    let until = Instant::now() + std::time::Duration::from_secs(5);
    while Instant::now() < until && ending_on(state, &p.item) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reservation = match reserve(state, Holder::Job(id.clone()), &p.item) {
        Ok(r) => r,
        Err(e) if e.code == mqttcal_core::ErrorCode::Refused => {
            let reason = e.details.as_ref().and_then(|d| d["reason"].as_str());
            return Err(refuse(ctx, state, &id, reason.unwrap_or("job_running"), e.message).await);
        }
        Err(e) => return Err(e),
    };
    match ask::<Value>(ctx, &state.config.datad, "job", json!({ "id": id })).await {
        Ok(_) => {
            return Err(
                NodeError::invalid_params(format!("job `{id}` exists already in datad"))
                    .with_details(json!({ "field": "job" })),
            )
        }
        Err(mqttcal_core::CallError::Remote { error, .. })
            if error.details.as_ref().and_then(|d| d.get("reason"))
                == Some(&Value::from("not_found")) => {}
        Err(e) => return Err(datad_error(e)),
    }
    let customer = match equipment(ctx, state, &p.item).await? {
        Some(e) if e.checked_in.is_some() && e.checked_out.is_none() => e.owner,
        _ => {
            return Err(refuse(
                ctx,
                state,
                &id,
                "not_checked_in",
                format!("`{}` is not checked in (use `checkin` first)", p.item),
            )
            .await)
        }
    };
    let used = check_equipment(ctx, state, &id, &p.procedure.reference, end).await?;
    let body =
        serde_json::to_value(&p.procedure).map_err(|e| NodeError::internal(e.to_string()))?;
    let hash: Value = ask(
        ctx,
        &state.config.datad,
        "save_config",
        json!({ "body": body }),
    )
    .await
    .map_err(datad_error)?;
    let config_hash = hash["hash"].as_str().unwrap_or_default().to_owned();
    let job = Arc::new(Job {
        id,
        item: p.item,
        customer,
        operator: p
            .operator
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty()),
        procedure: p.procedure,
        config_hash,
        at,
        equipment: std::sync::Mutex::new(used),
        done: AtomicU32::new(0),
        cancel: AtomicBool::new(false),
        ending: AtomicBool::new(false),
    });
    Ok((job, reservation))
}

#[cfg(test)]
mod tests {
    use super::serial_of;

    #[test]
    fn serials_come_from_idn_or_the_calibration_string() {
        assert_eq!(
            serial_of("Keysight Technologies,34470A,MY123,A.03.02"),
            "MY123"
        );
        assert_eq!(serial_of("HP3458A CALSTR \"2823A12345\""), "2823A12345");
        assert_eq!(serial_of("HP3458A"), "HP3458A");
    }
}
