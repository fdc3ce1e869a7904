//! A certificate's data, gathered once from datad: the job, its latest result, the item
//! and the equipment from the register, the conditions of the measurement.

use mqttcal_certificates::{
    CertificateData, Condition, Equipment as UsedEquipment, Item, Method, Party, Person,
    ResultLine, Software, Status,
};
use mqttcal_core::clock::Timestamp;
use mqttcal_core::{error_chain, CallError, Context, NodeError};
use mqttcal_messages::{Equipment, JobRecord, ResultRecord};
use mqttcal_metrology::Reported;
use serde::Deserialize;
use serde_json::{json, Value};

use super::TpldConfig;

/// How long a request to datad may take.
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A job as datad returns it.
#[derive(Debug, Deserialize)]
pub(super) struct StoredJob {
    #[serde(flatten)]
    pub(super) job: JobRecord,
    created_at: f64,
}

/// A result as datad returns it.
#[derive(Debug, Deserialize)]
struct StoredResult {
    recorded_at: f64,
    #[serde(flatten)]
    result: ResultRecord,
}

pub(super) async fn ask<R: serde::de::DeserializeOwned>(
    ctx: &Context,
    to: &str,
    cap: &str,
    params: Value,
) -> Result<R, NodeError> {
    ask_within(ctx, to, cap, params, PEER_TIMEOUT).await
}

/// [`ask`], waiting up to `timeout` (for a reply that takes a store long to gather).
pub(super) async fn ask_within<R: serde::de::DeserializeOwned>(
    ctx: &Context,
    to: &str,
    cap: &str,
    params: Value,
    timeout: std::time::Duration,
) -> Result<R, NodeError> {
    let v = ctx
        .request_timeout(to, cap, params, timeout)
        .await
        .map_err(|e| match e {
            CallError::Remote { mut error, .. } => {
                error.message = format!("{to}: {}", error.message);
                error
            }
            other => NodeError::link(format!("{to}: {}", error_chain(&other))),
        })?;
    serde_json::from_value(v)
        .map_err(|e| NodeError::internal(format!("unexpected reply of {to} to `{cap}`: {e}")))
}

/// The date (UTC, `YYYY-MM-DD`) of a time in seconds since the Unix epoch.
pub(super) fn date(secs: f64) -> String {
    Timestamp::from_secs_f64(secs).utc_string()[..10].to_owned()
}

/// What the caller adds to what datad knows.
#[derive(Debug, Default)]
pub(super) struct Extra {
    pub(super) customer: Option<Party>,
    pub(super) persons: Vec<Person>,
}

/// The data of job `job`'s certificate, as a draft.
pub(super) async fn gather(
    ctx: &Context,
    cfg: &TpldConfig,
    job_id: &str,
    extra: Extra,
) -> Result<CertificateData, NodeError> {
    let datad = cfg.datad.as_str();
    let stored: StoredJob = ask(ctx, datad, "job", json!({ "id": job_id })).await?;
    let job = stored.job;
    let results: Vec<StoredResult> = ask(ctx, datad, "results", json!({ "id": job_id })).await?;
    // The latest result: a correction comes after the result it amends.
    let Some(latest) = results.into_iter().last() else {
        return Err(NodeError::refused(format!(
            "job `{job_id}` has no result yet: a certificate states a stored result"
        ))
        .with_details(json!({"reason": "no_result"})));
    };
    let r = &latest.result;
    let item_id = job
        .item
        .clone()
        .or_else(|| r.standard.clone())
        .ok_or_else(|| NodeError::refused(format!("job `{job_id}` names no item")))?;
    let item: Equipment = ask(ctx, datad, "equipment", json!({ "id": item_id })).await?;
    let customer = match extra.customer {
        Some(c) => c,
        None => customer_of(&job)?,
    };
    let mut persons = extra.persons;
    if persons.is_empty() {
        if let Some(by) = calibrator(&job, r) {
            persons.push(Person {
                name: by,
                role: "calibrated".into(),
                main_signer: false,
            });
        }
    }
    if persons.is_empty() {
        return Err(NodeError::invalid_params(format!(
            "the result of job `{job_id}` names nobody who recorded it: pass `persons` (each with `name` and `role`)"
        )));
    }
    let reported = Reported::new(r.value, r.expanded_uncertainty, cfg.rounding)
        .map_err(|e| NodeError::refused(format!("the stored result cannot be reported: {e}")))?;
    let missing = |what: &str| {
        NodeError::refused(format!(
            "`{item_id}` has no {what} in the equipment register: register it (datad `register_equipment`) before its certificate"
        ))
    };
    Ok(CertificateData {
        number: format!("DRAFT-{job_id}"),
        status: Status::Draft,
        language: cfg.language.clone(),
        country: cfg.country.clone(),
        begin: date(stored.created_at),
        end: date(latest.recorded_at),
        received: None,
        issued: None,
        performed_at: mqttcal_certificates::PerformanceLocation::Laboratory,
        laboratory: cfg.laboratory.clone(),
        customer,
        item: Item {
            name: item
                .description
                .clone()
                .unwrap_or_else(|| format!("{:?} {}", item.kind, item.id)),
            manufacturer: item
                .manufacturer
                .clone()
                .ok_or_else(|| missing("manufacturer"))?,
            model: item.model.clone(),
            serial: item.serial.clone().ok_or_else(|| missing("serial"))?,
            id: Some(item.id.clone()),
        },
        persons,
        method: Method {
            name: job.procedure.clone().unwrap_or_else(|| cfg.method.clone()),
            description: None,
            norms: Vec::new(),
        },
        equipment: r
            .equipment
            .iter()
            .map(|e| UsedEquipment {
                name: e.role.clone(),
                id: e.id.clone(),
                manufacturer: None,
                model: e.identity.clone(),
                serial: e.serial.clone(),
                calibration_due: e.calibration_due.map(date),
            })
            .collect(),
        conditions: conditions(r.environment.as_ref()),
        results: vec![ResultLine {
            name: r.quantity.clone(),
            value: reported.value_text(),
            unit: r.unit.clone(),
            expanded_uncertainty: reported.expanded_text(),
            coverage_factor: format!("{:.2}", r.coverage_factor),
            coverage_probability: cfg.coverage_probability.clone(),
        }],
        traceability: cfg.traceability.clone(),
        amends: None,
        software: Software {
            name: "mqttcal".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
    })
}

/// Who calibrated: the job's `body.operator`, else whoever recorded the result.
pub(super) fn calibrator(job: &JobRecord, r: &ResultRecord) -> Option<String> {
    job.body
        .as_ref()
        .and_then(|b| b.get("operator"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| r.recorded_by.clone())
}

/// The customer's details a job keeps in `body.customer` (an object).
fn customer_of(job: &JobRecord) -> Result<Party, NodeError> {
    let Some(c) = job.body.as_ref().and_then(|b| b.get("customer")) else {
        return Err(NodeError::invalid_params(format!(
            "job `{}` keeps no customer details (`body.customer`): pass `customer` (name, email, address)",
            job.id
        )));
    };
    serde_json::from_value(c.clone()).map_err(|e| {
        NodeError::invalid_params(format!(
            "job `{}`: `body.customer` is not a customer's details: {e}",
            job.id
        ))
    })
}

/// The conditions a result's `environment` summarises (`temperature`, `humidity`,
/// `pressure`, each with `min`, `max`, `mean`): the mean and the half-width of the range.
fn conditions(environment: Option<&Value>) -> Vec<Condition> {
    let Some(env) = environment else {
        return Vec::new();
    };
    [
        ("temperature", "Ambient temperature", "°C", 1),
        ("humidity", "Relative humidity", "%RH", 0),
        ("pressure", "Atmospheric pressure", "hPa", 0),
    ]
    .into_iter()
    .filter_map(|(key, name, unit, decimals)| {
        let span = env.get(key)?;
        let (min, max, mean) = (
            span.get("min")?.as_f64()?,
            span.get("max")?.as_f64()?,
            span.get("mean")?.as_f64()?,
        );
        Some(Condition {
            name: name.into(),
            value: format!("{mean:.decimals$}"),
            unit: unit.into(),
            half_width: Some(format!("{:.1$}", (max - min).abs() / 2.0, decimals + 1)),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_the_means_with_half_widths() {
        let env = json!({
            "temperature": {"min": 22.9, "max": 23.3, "mean": 23.1},
            "humidity": {"min": 40.0, "max": 45.0, "mean": 42.4},
            "pressure": null,
            "violations": []
        });
        let c = conditions(Some(&env));
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].value.as_str(), c[0].half_width.as_deref()),
            ("23.1", Some("0.20"))
        );
        assert_eq!((c[1].value.as_str(), c[1].unit.as_str()), ("42", "%RH"));
        assert_eq!(date(0.0), "1970-01-01");
        assert_eq!(date(1_798_761_600.0), "2027-01-01");
    }
}
