//! datad's capabilities over the lab's records: the equipment register and each item's
//! calibration history, results, certificate records.

use crate::reply::store_error;
use std::sync::Arc;

use mqttcal_core::{NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use mqttcal_messages::{CalibrationRecord, CertificateRecord, Equipment, ResultRecord};
use mqttcal_store::Store;

/// Selects one item by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ById {
    /// The id (equipment id, job or certificate number).
    id: String,
}

/// `v` as a reply value.
pub(super) fn to_value<T: serde::Serialize>(v: T) -> Result<Value, NodeError> {
    serde_json::to_value(v).map_err(|e| NodeError::internal(e.to_string()))
}

/// Adds the record capabilities to `b`.
pub(super) fn register(b: NodeBuilder, store: &Arc<dyn Store>) -> NodeBuilder {
    let s = store.clone();
    let b = b.capability(
        "register_equipment",
        "Adds an item (standard or instrument) to the equipment register, or updates it",
        move |e: Equipment, _| {
            let s = s.clone();
            async move {
                s.register_equipment(&e).await.map_err(store_error)?;
                Ok::<_, NodeError>(json!({"id": e.id}))
            }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "equipment",
        "An item of the equipment register",
        move |p: ById, _| {
            let s = s.clone();
            async move {
                match s.equipment(&p.id).await.map_err(store_error)? {
                    Some(e) => to_value(e),
                    None => Err(NodeError::invalid_params(format!(
                        "`{}` is not in the equipment register",
                        p.id
                    ))),
                }
            }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "add_calibration",
        "Adds a calibration (value, expanded uncertainty, date, certificate) to an item's history",
        move |c: CalibrationRecord, _| {
            let s = s.clone();
            async move {
                let id = s.add_calibration(&c).await.map_err(store_error)?;
                Ok::<_, NodeError>(json!({"id": id}))
            }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "history",
        "The calibration history of a standard or instrument, oldest first (for drift fits)",
        move |p: ById, _| {
            let s = s.clone();
            async move { to_value(s.history(&p.id).await.map_err(store_error)?) }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "save_result",
        "Stores a result with its uncertainty budget; a correction names the result it amends and why",
        move |r: ResultRecord, _| {
            let s = s.clone();
            async move { to_value(s.save_result(&r).await.map_err(store_error)?) }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "results",
        "The results of a job, in the order they were stored",
        move |p: ById, _| {
            let s = s.clone();
            async move { to_value(s.results(&p.id).await.map_err(store_error)?) }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "save_certificate",
        "Stores a certificate record with its rendered documents; returns its content hash",
        move |c: CertificateRecord, _| {
            let s = s.clone();
            async move {
                let hash = s.save_certificate(&c).await.map_err(store_error)?;
                Ok::<_, NodeError>(json!({"number": c.number, "content_hash": hash}))
            }
        },
    );
    let s = store.clone();
    b.capability(
        "certificate",
        "A certificate record with its documents and content hash",
        move |p: ById, _| {
            let s = s.clone();
            async move {
                match s.certificate(&p.id).await.map_err(store_error)? {
                    Some(c) => to_value(c),
                    None => Err(NodeError::invalid_params(format!(
                        "there is no certificate `{}`",
                        p.id
                    ))),
                }
            }
        },
    )
}
