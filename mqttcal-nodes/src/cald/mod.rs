//! cald: the calibration node. It checks standards in and out, runs calibration jobs
//! through labd (requests only, never the instruments), evaluates them with a GUM budget
//! ([`mqttcal_metrology`]) and stores the results through datad.
//!
//! Available with the `cald` feature.
//!
//! A job follows a [`Procedure`] (data, stored with its hash): `groups` groups of + − − +
//! reversals in series opposition against a reference standard whose drift line comes from
//! its calibration history. Before it starts, cald refuses (`refused`, with a logbook
//! entry) a job whose reference or instruments are overdue or whose instruments are not the
//! ones in the register. While it runs, progress messages go out on `progress`; `cancel`
//! stops it between readings. A result is computed only from complete groups, at the end;
//! cald killed mid-job leaves the job `running` in datad, and the next start of cald marks
//! it `aborted` (it is not resumed: the readings' conditions cannot be vouched for across a
//! gap of unknown length).
//!
//! ```no_run
//! # async fn demo(transport: &dyn mqttcal_core::transport::Transport) -> Result<(), mqttcal_core::RunError> {
//! use mqttcal_nodes::cald::{self, CaldConfig};
//! let node = cald::node("cald", CaldConfig::default()).build().start(transport).await?;
//! # node.stop().await
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use mqttcal_core::{error_chain, node, Context, NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod checks;
mod evaluate;
mod params;
mod procedure;
mod recovery;
mod run;

pub use evaluate::{evaluate, Deviations, Outcome};
pub use params::{CheckIn, CheckedIn, ItemId, JobId, JobState, Requested, Start, Started};
pub use procedure::{Limits, OnViolation, Procedure, Terms};

/// The topic progress messages go out on (QoS 0, simple messages).
pub use mqttcal_core::topics::PROGRESS;

/// The `cald` section of the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CaldConfig {
    /// The labd node jobs measure through.
    #[serde(default = "default_labd")]
    pub labd: String,
    /// The datad node that keeps the records.
    #[serde(default = "default_datad")]
    pub datad: String,
    /// labd's instruments (as `identify` names them, e.g. `dmm`) and their equipment ids
    /// in the register: a job checks each one's serial and calibration due date.
    #[serde(default)]
    pub instruments: BTreeMap<String, String>,
}

fn default_labd() -> String {
    "labd".into()
}
fn default_datad() -> String {
    "datad".into()
}

impl Default for CaldConfig {
    fn default() -> Self {
        Self {
            labd: default_labd(),
            datad: default_datad(),
            instruments: BTreeMap::new(),
        }
    }
}

/// A job cald runs.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) item: String,
    pub(crate) customer: Option<String>,
    /// Who calibrates, when the start named them.
    pub(crate) operator: Option<String>,
    pub(crate) procedure: Procedure,
    pub(crate) config_hash: String,
    /// When it starts, Unix seconds.
    pub(crate) at: f64,
    /// The equipment it relies on, with calibration due dates.
    /// Checked again when the job starts.
    pub(crate) equipment: Mutex<Vec<mqttcal_messages::EquipmentUsed>>,
    pub(crate) done: AtomicU32,
    pub(crate) cancel: AtomicBool,
    /// Set once its result is being stored or it stopped: it only records its end now.
    pub(crate) ending: AtomicBool,
}

/// What every capability and every job shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: CaldConfig,
    pub(crate) jobs: Mutex<HashMap<String, Arc<Job>>>,
    /// Items held while a start, check-in or check-out checks them (item → holder), so two
    /// of these cannot both have one item. Locked after `jobs`.
    pub(crate) pending: Mutex<HashMap<String, checks::Holder>>,
    /// How many refusals the logbook gets.
    pub(crate) refusals: crate::budget::RefusalBudget,
}

/// cald's capabilities.
#[derive(Debug)]
pub struct Cald {
    state: Arc<State>,
}

#[node]
impl Cald {
    /// Register an incoming standard (customer, maker, model, serial, nominal value) in the equipment register, optionally with the calibration asked for
    #[capability]
    async fn checkin(&self, mut p: CheckIn, ctx: &Context) -> Result<CheckedIn, NodeError> {
        let requested = p.calibration.take();
        let item = checks::checkin(ctx, &self.state, p).await?;
        let Some(r) = requested else {
            return Ok(CheckedIn {
                id: item.id,
                job: None,
            });
        };
        let start = Start {
            item: item.id.clone(),
            procedure: r.procedure,
            job: r.job,
            at: r.at,
            operator: None,
        };
        match start_job(ctx, &self.state, start).await {
            Ok(job) => Ok(CheckedIn {
                id: item.id,
                job: Some(job),
            }),
            // The item stays checked in; the caller learns why no job was planned.
            Err(mut e) => {
                e.message = format!(
                    "`{}` is checked in, but its calibration was not planned: {}",
                    item.id, e.message
                );
                let mut details = e.details.take().unwrap_or_else(|| serde_json::json!({}));
                details["checked_in"] = true.into();
                Err(e.with_details(details))
            }
        }
    }

    /// Free a standard for delivery (refused while a job on it runs)
    #[capability]
    async fn checkout(&self, p: ItemId, ctx: &Context) -> Result<ItemId, NodeError> {
        checks::checkout(ctx, &self.state, p).await
    }

    /// Plan a calibration job (now or at a given time); returns at once with the job id
    #[capability]
    async fn start(&self, p: Start, ctx: &Context) -> Result<Started, NodeError> {
        start_job(ctx, &self.state, p).await
    }

    /// The jobs this cald runs or has planned, with their progress
    #[capability]
    async fn jobs(&self) -> Result<Vec<JobState>, NodeError> {
        let jobs = self.state.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<JobState> = jobs.values().map(|j| JobState::of(j)).collect();
        list.sort_by(|a, b| a.at.total_cmp(&b.at).then_with(|| a.job.cmp(&b.job)));
        Ok(list)
    }

    /// Cancel a job: it stops between readings and no result is stored
    #[capability]
    async fn cancel(&self, p: JobId, ctx: &Context) -> Result<JobState, NodeError> {
        {
            let jobs = self.state.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(job) = jobs.get(&p.job) {
                job.cancel.store(true, Ordering::Relaxed);
                return Ok(JobState::of(job));
            }
        }
        // Not here: say whether it ended already, or never was.
        Err(checks::not_running(ctx, &self.state, &p.job).await)
    }

    /// The lab's status: cald's jobs and every node that answers `ping`
    #[capability]
    async fn status(&self, ctx: &Context) -> Result<serde_json::Value, NodeError> {
        let replies = ctx
            .gather(
                "ping",
                serde_json::json!({}),
                mqttcal_core::Gather {
                    timeout: std::time::Duration::from_millis(500),
                    expect: None,
                },
            )
            .await
            .map_err(|e| NodeError::internal(error_chain(&e)))?;
        let nodes: BTreeMap<String, serde_json::Value> = replies
            .into_iter()
            .filter_map(|r| r.reply.map(|v| (r.from, v)))
            .collect();
        let jobs = self.jobs().await?;
        Ok(serde_json::json!({"nodes": nodes, "jobs": jobs}))
    }
}

/// Plans a job and runs it in the background.
async fn start_job(ctx: &Context, state: &Arc<State>, p: Start) -> Result<Started, NodeError> {
    if let Some(o) = &p.operator {
        let o = o.trim();
        if o.is_empty() || o.chars().count() > 100 || o.chars().any(char::is_control) {
            return Err(NodeError::invalid_params(
                "operator: a name of 1 to 100 characters, none of them control characters",
            )
            .with_details(serde_json::json!({"field": "operator"})));
        }
    }
    let (job, reservation) = checks::plan(ctx, state, p).await?;
    let started = Started {
        job: job.id.clone(),
        config_hash: job.config_hash.clone(),
        steps: job.procedure.steps(),
        at: job.at,
    };
    run::save_job(ctx, state, &job, "planned", serde_json::json!({})).await?;
    state
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id.clone(), job.clone());
    drop(reservation);
    tokio::spawn(run::run(ctx.clone(), state.clone(), job));
    Ok(started)
}

/// The cald node named `name`. At start it marks the jobs a killed cald of the same name
/// left `running` as `aborted`.
pub fn node(name: &str, config: CaldConfig) -> NodeBuilder {
    let state = Arc::new(State {
        config,
        jobs: Mutex::default(),
        pending: Mutex::default(),
        refusals: crate::budget::RefusalBudget::default(),
    });
    let recover = state.clone();
    let stopping = state.clone();
    NodeBuilder::new(name)
        .register(Cald { state })
        .background(move |ctx| recovery::run(ctx, recover))
        .on_stop(move |_| async move {
            // Jobs stop between readings and store their end (`cancelled`) while the node
            // still has its connection: up to 10 s. A job that could not is marked
            // `aborted` at the next start.
            for job in stopping
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                job.cancel.store(true, Ordering::Relaxed);
            }
            let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < end
                && !stopping
                    .jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty()
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
}
