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
use super::run::log;
use super::{Job, State};

fn datad_error(e: mqttcal_core::CallError) -> NodeError {
    match e {
        mqttcal_core::CallError::Remote { error, .. } => error,
        other => NodeError::link(format!("datad: {}", error_chain(&other))),
    }
}

/// An item of the register, `None` when datad has none by that id.
async fn equipment(ctx: &Context, state: &State, id: &str) -> Result<Option<Equipment>, NodeError> {
    match ctx
        .request_as::<Equipment>(&state.config.datad, "equipment", json!({ "id": id }))
        .await
    {
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

/// Refuses with `reason`, after a logbook entry.
async fn refuse(ctx: &Context, job: &str, reason: &str, text: String) -> NodeError {
    log(
        ctx,
        job,
        "refusal",
        &["refusal", reason],
        format!("job {job} refused: {text}"),
    )
    .await;
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
        )))
    }
}

/// The UTC date of `t`, Unix seconds.
fn days(t: f64) -> String {
    let mut s = Timestamp::from_secs_f64(t.max(0.0)).utc_string();
    s.truncate(10);
    s
}

/// A job id from the time: `J-20261204-061530-1234`.
fn new_job_id() -> String {
    let s = Timestamp::now().utc_string();
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    format!("J-{}-{}-{}", &digits[..8], &digits[8..14], &digits[14..18])
}

pub(super) async fn checkin(ctx: &Context, state: &State, p: CheckIn) -> Result<ItemId, NodeError> {
    valid_id("id", &p.id)?;
    if !(p.nominal_value.is_finite()) || p.serial.trim().is_empty() || p.customer.trim().is_empty()
    {
        return Err(NodeError::invalid_params(
            "`serial` and `customer` must not be empty and `nominal_value` must be a number",
        ));
    }
    if let Some(e) = equipment(ctx, state, &p.id).await? {
        if e.checked_in.is_some() && e.checked_out.is_none() {
            return Err(NodeError::refused(format!(
                "`{}` is checked in already (serial {})",
                p.id,
                e.serial.unwrap_or_default()
            ))
            .with_details(json!({"reason": "checked_in"})));
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
    ctx.request(&state.config.datad, "register_equipment", &item)
        .await
        .map_err(datad_error)?;
    log(
        ctx,
        "-",
        "checkin",
        &["checkin"],
        format!("{} checked in", p.id),
    )
    .await;
    Ok(ItemId { id: p.id })
}

pub(super) async fn checkout(ctx: &Context, state: &State, p: ItemId) -> Result<ItemId, NodeError> {
    let running: Vec<String> = {
        let jobs = state.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .filter(|j| j.item == p.id)
            .map(|j| j.id.clone())
            .collect()
    };
    if let Some(job) = running.first() {
        return Err(refuse(
            ctx,
            job,
            "job_running",
            format!("`{}` cannot be checked out: job {job} runs on it", p.id),
        )
        .await);
    }
    let Some(mut e) = equipment(ctx, state, &p.id).await? else {
        return Err(NodeError::invalid_params(format!(
            "no item `{}` in the register",
            p.id
        )));
    };
    e.checked_out = Some(Timestamp::now().as_secs_f64());
    ctx.request(&state.config.datad, "register_equipment", &e)
        .await
        .map_err(datad_error)?;
    log(
        ctx,
        "-",
        "checkout",
        &["checkout"],
        format!("{} checked out", p.id),
    )
    .await;
    Ok(ItemId { id: p.id })
}

/// The identity's serial: the third field of a SCPI `*IDN?` answer, else the whole text.
fn serial_of(identity: &str) -> &str {
    let fields: Vec<&str> = identity.split(',').map(str::trim).collect();
    if fields.len() == 4 {
        fields[2]
    } else {
        identity.trim()
    }
}

/// Checks everything a job relies on and stores its procedure; the job, not yet running.
pub(super) async fn plan(ctx: &Context, state: &State, p: Start) -> Result<Arc<Job>, NodeError> {
    p.procedure.validate()?;
    let now = Timestamp::now().as_secs_f64();
    let at = p.at.unwrap_or(now);
    if !at.is_finite() || at > now + 366.0 * 86_400.0 {
        return Err(NodeError::invalid_params(
            "`at` must be a time within a year",
        ));
    }
    let id = match p.job {
        Some(id) => id,
        None => new_job_id(),
    };
    valid_id("job", &id)?;
    valid_id("item", &p.item)?;
    if p.item == p.procedure.reference {
        return Err(NodeError::invalid_params(
            "the item cannot be its own reference",
        ));
    }
    {
        let jobs = state.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.contains_key(&id) {
            return Err(NodeError::invalid_params(format!(
                "job `{id}` exists already"
            )));
        }
        if let Some(other) = jobs.values().find(|j| j.item == p.item) {
            return Err(NodeError::refused(format!(
                "job {} already runs on `{}`",
                other.id, p.item
            ))
            .with_details(json!({"reason": "job_running", "job": other.id})));
        }
    }
    if ctx
        .request(&state.config.datad, "job", json!({ "id": id }))
        .await
        .is_ok()
    {
        return Err(NodeError::invalid_params(format!(
            "job `{id}` exists already in datad"
        )));
    }
    let customer = match equipment(ctx, state, &p.item).await? {
        Some(e) if e.checked_in.is_some() && e.checked_out.is_none() => e.owner,
        _ => {
            return Err(refuse(
                ctx,
                &id,
                "not_checked_in",
                format!("`{}` is not checked in (use `checkin` first)", p.item),
            )
            .await)
        }
    };
    let mut used = Vec::new();
    let reference = &p.procedure.reference;
    let Some(r) = equipment(ctx, state, reference).await? else {
        return Err(refuse(
            ctx,
            &id,
            "unknown_reference",
            format!("the reference `{reference}` is not in the equipment register"),
        )
        .await);
    };
    if let Some(due) = r.calibration_due {
        if due < at {
            return Err(refuse(
                ctx,
                &id,
                "overdue",
                format!(
                    "the reference `{reference}` was due for calibration on {}",
                    days(due)
                ),
            )
            .await);
        }
    }
    used.push(EquipmentUsed {
        role: "reference".into(),
        id: reference.clone(),
        serial: r.serial.clone(),
        calibration_due: r.calibration_due,
        identity: None,
    });
    let history: Vec<CalibrationRecord> = ctx
        .request_as(&state.config.datad, "history", json!({ "id": reference }))
        .await
        .map_err(datad_error)?;
    if history.len() < 2 {
        return Err(refuse(
            ctx,
            &id,
            "no_history",
            format!(
                "the reference `{reference}` has {} calibration(s) in its history; its drift needs 2",
                history.len()
            ),
        )
        .await);
    }
    if !state.config.instruments.is_empty() {
        let ids: Value = ctx
            .request(&state.config.labd, "identify", json!({}))
            .await
            .map_err(|e| NodeError::link(format!("labd: {}", error_chain(&e))))?;
        for (name, eq_id) in &state.config.instruments {
            let identity = ids.get(name).and_then(Value::as_str).unwrap_or_default();
            let Some(e) = equipment(ctx, state, eq_id).await? else {
                return Err(refuse(
                    ctx,
                    &id,
                    "unknown_instrument",
                    format!("instrument `{name}` maps to `{eq_id}`, which is not in the register"),
                )
                .await);
            };
            if let Some(due) = e.calibration_due {
                if due < at {
                    return Err(refuse(
                        ctx,
                        &id,
                        "overdue",
                        format!(
                            "instrument `{name}` (`{eq_id}`) was due for calibration on {}",
                            days(due)
                        ),
                    )
                    .await);
                }
            }
            let registered = e.serial.clone().unwrap_or_default();
            if registered.is_empty() || serial_of(identity) != registered.trim() {
                return Err(refuse(
                    ctx,
                    &id,
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
    let body =
        serde_json::to_value(&p.procedure).map_err(|e| NodeError::internal(e.to_string()))?;
    let hash: Value = ctx
        .request(&state.config.datad, "save_config", json!({ "body": body }))
        .await
        .map_err(datad_error)?;
    let config_hash = hash["hash"].as_str().unwrap_or_default().to_owned();
    Ok(Arc::new(Job {
        id,
        item: p.item,
        customer,
        procedure: p.procedure,
        config_hash,
        at,
        equipment: used,
        started: Instant::now(),
        done: AtomicU32::new(0),
        cancel: AtomicBool::new(false),
    }))
}
