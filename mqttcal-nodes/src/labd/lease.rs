//! The job lease: a calibration job takes labd for itself (`lease`, renewed while it runs,
//! `release` at its end), so nobody's `measure` slips in between its readings. While the
//! lease holds, a `measure` of any other job, or of none, is `busy` naming the job; the
//! built-ins and `settings` still answer. A lease belongs to the node that took it (the
//! request's `from`): only that node renews or releases it, measures for its job or changes
//! labd's settings while it holds. A lease not renewed lapses by itself, so a job whose
//! controller died never blocks the lab for long.

use std::sync::{Arc, Mutex};

use mqttcal_core::clock::Timestamp;
use mqttcal_core::NodeError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Parameters of `lease`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseParams {
    /// The job that takes labd (1 to 128 characters).
    pub job: String,
    /// How long the lease holds unless renewed, s (1 to 3600).
    pub seconds: f64,
}

/// Parameters of `release`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseParams {
    /// The job that holds the lease.
    pub job: String,
}

/// A lease as `lease` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    /// The job that holds labd.
    pub job: String,
    /// The node that took the lease for the job.
    pub holder: String,
    /// When the lease lapses unless renewed, Unix seconds.
    pub expires: f64,
}

/// labd's lease, shared by `lease`, `release` and `measure`, and who may take it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Leases(Arc<Mutex<Option<Lease>>>, Arc<Vec<String>>);

impl Leases {
    /// The lease in force, if any.
    fn held(&self) -> Option<Lease> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot
            .as_ref()
            .is_some_and(|l| l.expires <= Timestamp::now().as_secs_f64())
        {
            *slot = None;
        }
        slot.clone()
    }

    fn busy(lease: &Lease) -> NodeError {
        let left = (lease.expires - Timestamp::now().as_secs_f64()).max(0.0);
        NodeError::busy(format!(
            "labd is leased to job {} of {} (for {left:.0} s more unless renewed)",
            lease.job, lease.holder
        ))
        .with_details(json!({ "job": lease.job, "holder": lease.holder, "expires": lease.expires }))
    }

    /// Leases that only the nodes in `allowed` may take.
    pub(crate) fn new(allowed: Vec<String>) -> Self {
        Self(Arc::default(), Arc::new(allowed))
    }

    /// Takes or renews the lease for `p.job` on behalf of `caller`; `refused` for a caller
    /// not allowed to, `busy` while another job, or another node, holds it.
    pub(crate) fn take(&self, p: &LeaseParams, caller: &str) -> Result<Lease, NodeError> {
        if !self.1.iter().any(|n| n == caller) {
            return Err(NodeError::refused(format!(
                "`{caller}` may not take labd's lease (labd's lease-from: {})",
                self.1.join(", ")
            ))
            .with_details(json!({ "reason": "not_allowed" })));
        }
        if p.job.is_empty() || p.job.chars().count() > 128 {
            return Err(
                NodeError::invalid_params("`job` must be 1 to 128 characters")
                    .with_details(json!({ "field": "job" })),
            );
        }
        if !(1.0..=3600.0).contains(&p.seconds) {
            return Err(NodeError::invalid_params("`seconds` must be 1 to 3600")
                .with_details(json!({ "field": "seconds" })));
        }
        if let Some(other) = self.held().filter(|l| l.job != p.job || l.holder != caller) {
            return Err(Self::busy(&other));
        }
        let lease = Lease {
            job: p.job.clone(),
            holder: caller.to_owned(),
            expires: Timestamp::now().as_secs_f64() + p.seconds,
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease.clone());
        Ok(lease)
    }

    /// Ends the lease of `job` (nothing to do when none holds); another job's lease, or
    /// another node's, is not this caller's to end.
    pub(crate) fn release(
        &self,
        p: &ReleaseParams,
        caller: &str,
    ) -> Result<Option<Lease>, NodeError> {
        match self.held() {
            Some(l) if l.job != p.job || l.holder != caller => Err(NodeError::refused(format!(
                "the lease is held by job {} of {}, not by job {} of {caller}",
                l.job, l.holder, p.job
            ))
            .with_details(json!({ "reason": "not_holder", "job": l.job, "holder": l.holder }))),
            _ => {
                *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(None)
            }
        }
    }

    /// Whether `caller` may change labd's settings now: only the holder while a lease holds.
    pub(crate) fn check_holder(&self, caller: &str) -> Result<(), NodeError> {
        match self.held() {
            Some(l) if l.holder != caller => Err(Self::busy(&l)),
            _ => Ok(()),
        }
    }

    /// Whether `caller` may measure for `job` (`None`: for no job) now.
    pub(crate) fn check(&self, job: Option<&str>, caller: &str) -> Result<(), NodeError> {
        match self.held() {
            Some(l) if Some(l.job.as_str()) != job || l.holder != caller => Err(Self::busy(&l)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_keeps_other_jobs_out_until_released() {
        let l = Leases::new(vec!["cald".into()]);
        l.check(None, "x").unwrap();
        l.take(
            &LeaseParams {
                job: "J-1".into(),
                seconds: 60.0,
            },
            "cald",
        )
        .unwrap();
        l.check(Some("J-1"), "cald").unwrap();
        l.check_holder("cald").unwrap();
        assert!(l.check_holder("intruder").is_err());
        // The job's name alone does not make another node its holder.
        let e = l.check(Some("J-1"), "intruder").unwrap_err();
        assert_eq!(e.code, mqttcal_core::ErrorCode::Busy);
        let e = l.check(None, "cald").unwrap_err();
        assert_eq!(e.code, mqttcal_core::ErrorCode::Busy);
        assert!(e.message.contains("J-1"), "{}", e.message);
        let e = l
            .take(
                &LeaseParams {
                    job: "J-2".into(),
                    seconds: 60.0,
                },
                "cald",
            )
            .unwrap_err();
        assert!(e.message.contains("J-1"));
        // Nobody else renews it for an hour or ends it.
        let renew = LeaseParams {
            job: "J-1".into(),
            seconds: 3600.0,
        };
        let e = l.take(&renew, "intruder").unwrap_err();
        assert_eq!(
            e.code,
            mqttcal_core::ErrorCode::Refused,
            "not a lease holder"
        );
        assert!(l
            .release(&ReleaseParams { job: "J-1".into() }, "intruder")
            .is_err());
        assert!(l
            .release(&ReleaseParams { job: "J-2".into() }, "cald")
            .is_err());
        l.release(&ReleaseParams { job: "J-1".into() }, "cald")
            .unwrap();
        l.check(Some("J-2"), "x").unwrap();
    }

    #[test]
    fn a_lease_not_renewed_lapses() {
        let l = Leases::new(vec!["cald".into()]);
        *l.0.lock().unwrap() = Some(Lease {
            job: "J-1".into(),
            holder: "cald".into(),
            expires: Timestamp::now().as_secs_f64() - 1.0,
        });
        l.check(None, "x").unwrap();
    }
}
