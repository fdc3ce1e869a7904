//! ctrld: the lab's one entry point. It knows which nodes are up and what they can do (from
//! `announce`, rebuilt by a census when it starts), gives the lab's aggregate `status`, and
//! forwards a call to a node only when its policy lets the caller's role make it; a call
//! that changes something, or that is refused, is written in the logbook with the user and
//! the role.
//!
//! Available with the `ctrld` feature.
//!
//! ```no_run
//! use mqttcal_core::transport::MqttTransport;
//! use mqttcal_nodes::ctrld::{self, CtrldConfig};
//! # async fn run(transport: MqttTransport) -> Result<(), Box<dyn std::error::Error>> {
//! let node = ctrld::node("ctrld", CtrldConfig::default())?.build();
//! let handle = node.start(&transport).await?;
//! // `call` forwards for a caller the policy knows:
//! // {"node": "cald", "capability": "jobs"} from a viewer answers;
//! // {"node": "cald", "capability": "start", ...} from a viewer is `forbidden` and logged.
//! handle.wait().await?;
//! # Ok(()) }
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mqttcal_core::{error_chain, node, topics, CallError, Context, Gather, NodeBuilder, NodeError};
use mqttcal_messages::LogEntry;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod acl;
mod policy;
mod presence;
mod readings;

pub use acl::{mosquitto_acl, mosquitto_acl_with_intakes};
pub use policy::{Policy, PolicyError};
use presence::{Heard, Presence};
pub use presence::{NodeState, NodeStatus};
pub use readings::LastReading;

/// ctrld's configuration (the `ctrld` section).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtrldConfig {
    /// Who may call what; the built-in roles (`viewer`, `operator`, `admin`) when absent.
    #[serde(default)]
    pub policy: Option<Policy>,
    /// A YAML file holding the policy (in place of `policy`).
    #[serde(default)]
    pub policy_file: Option<std::path::PathBuf>,
}

impl CtrldConfig {
    /// The policy this configuration names, read and checked.
    pub fn load_policy(&self) -> Result<Policy, PolicyError> {
        match (&self.policy, &self.policy_file) {
            (Some(_), Some(_)) => Err(PolicyError(
                "give `policy` or `policy_file`, not both".into(),
            )),
            (Some(p), None) => p.check().map(|()| p.clone()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| PolicyError(format!("{}: {e}", file.display())))?;
                Policy::from_yaml(&text)
                    .map_err(|e| PolicyError(format!("{}: {}", file.display(), e.0)))
            }
            (None, None) => Ok(Policy::default()),
        }
    }
}

/// A call for ctrld to forward.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The node to call (one node, not `*`).
    pub node: String,
    /// Its capability.
    pub capability: String,
    /// The capability's parameters.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The person the call is for: named only by a gateway (webd); others call as themselves.
    #[serde(default)]
    pub user: Option<String>,
    /// That person's role, named by the gateway with the user.
    #[serde(default)]
    pub role: Option<String>,
    /// How long to wait for the node, in seconds (default 10, at most 300).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// Who a gateway reads `nodes` or `status` for (both absent: for itself, or a caller
/// reading as itself).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFor {
    /// The person, named by a gateway only.
    #[serde(default)]
    pub user: Option<String>,
    /// Their role, whose policy decides.
    #[serde(default)]
    pub role: Option<String>,
}

/// Whose calls to a node to list: `allowed`'s parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowedOn {
    /// The node.
    pub node: String,
    /// The person, named by a gateway only.
    #[serde(default)]
    pub user: Option<String>,
    /// Their role.
    #[serde(default)]
    pub role: Option<String>,
}

/// The lab at a glance.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Status {
    /// Every node ctrld knows, by name.
    pub nodes: Vec<NodeState>,
    /// cald's jobs (planned or running), when cald answers.
    pub jobs: Option<Value>,
    /// Readings datad counts as missing, per sender, when datad answers.
    pub missing: Option<Value>,
    /// The last reading heard of each standard (since ctrld started).
    pub readings: Vec<LastReading>,
    /// What could not be found out, and why (e.g. `cald is not running`).
    pub unknown: Vec<String>,
    /// Announcements of new names ctrld left out (it keeps 1,000 nodes at most).
    pub ignored_names: u64,
}

/// ctrld's state.
#[derive(Debug)]
pub struct Ctrld {
    policy: Policy,
    presence: Arc<Presence>,
    /// Whether the census at start has run: before it, presence is not yet complete.
    counted: tokio::sync::watch::Receiver<bool>,
    refusals: crate::budget::RefusalBudgets,
    in_flight: InFlight,
    readings: Arc<readings::LastReadings>,
}

/// The longest name (node, capability, user, role) ctrld accepts.
const LONGEST_NAME: usize = 100;

/// Parameters that name who does what (tpld's `by`, logd's `author`, cald's `operator`):
/// forwarded only when they name the caller, and then as the caller's name exactly.
const NAMED_FIELDS: [&str; 3] = ["by", "author", "operator"];

/// Calls that name who does them even when the caller leaves it out: ctrld fills in the
/// caller (cald's `start`, so that whoever started a job cannot review its certificate).
const SIGNED: [(&str, &str, &str); 1] = [("cald", "start", "operator")];

/// Tags only ctrld and logd write: a call through ctrld may not carry them.
fn reserved_tag(tag: &str) -> bool {
    tag == "ctrld"
        || ["user:", "role:", "sender:"]
            .iter()
            .any(|p| tag.starts_with(p))
}

/// The most calls one user may have in flight through ctrld.
const CALLS_PER_USER: usize = 8;

/// A person's name as a gateway gives it: letters, digits, spaces and `._@'-`, so what the
/// logbook says of them cannot be read otherwise.
fn name_field(field: &str, value: Option<&str>) -> Result<String, NodeError> {
    let v = value.map(str::trim).unwrap_or_default();
    let fits = |c: char| c.is_alphanumeric() || " ._@'-".contains(c);
    if v.is_empty() || v.chars().count() > LONGEST_NAME || !v.chars().all(fits) {
        return Err(NodeError::invalid_params(format!(
            "`{field}` must be a name of 1 to {LONGEST_NAME} letters, digits, spaces or `._@'-`"
        ))
        .with_details(json!({ "field": field })));
    }
    Ok(v.to_owned())
}

/// A node's or capability's name: ASCII letters, digits and `_-@` (no `.`, which separates
/// them in the policy's patterns, and nothing MQTT or the logbook would read otherwise).
fn id_field(field: &str, value: &str) -> Result<(), NodeError> {
    let fits = |c: char| c.is_ascii_alphanumeric() || "_-@".contains(c);
    if value.is_empty() || value.len() > LONGEST_NAME || !value.chars().all(fits) {
        return Err(NodeError::invalid_params(format!(
            "`{field}` must be a name of 1 to {LONGEST_NAME} ASCII letters, digits or `_-@` (one node: `*` is not forwarded)"
        ))
        .with_details(json!({ "field": field })));
    }
    Ok(())
}

/// Calls in flight per user; a user at [`CALLS_PER_USER`] gets `busy`.
#[derive(Debug, Default)]
struct InFlight(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One call counted in [`InFlight`] until dropped.
struct Slot<'a> {
    flights: &'a InFlight,
    user: String,
}

impl InFlight {
    fn take(&self, user: &str) -> Option<Slot<'_>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(user.to_owned()).or_default();
        if *n >= CALLS_PER_USER {
            return None;
        }
        *n += 1;
        Some(Slot {
            flights: self,
            user: user.to_owned(),
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut m = self.flights.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

impl Ctrld {
    /// Waits (2 s at most) for the census at start, so presence is whole when asked.
    async fn counted(&self) {
        let mut done = self.counted.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), done.wait_for(|d| *d)).await;
    }

    /// Whether the caller may read ctrld's `capability` (`nodes`, `status`): a gateway for
    /// the person it names, as their role allows (for itself when it names nobody); anyone
    /// else as its own role allows.
    fn may_read(&self, ctx: &Context, capability: &str, p: &ReadFor) -> Result<(), NodeError> {
        let caller = ctx.caller().unwrap_or_default();
        if self.policy.gateways.iter().any(|g| g == caller) {
            if p.user.is_none() && p.role.is_none() {
                return Ok(());
            }
            name_field("user", p.user.as_deref())?;
            let role = name_field("role", p.role.as_deref())?;
            if self.policy.allows(&role, ctx.name(), capability) {
                return Ok(());
            }
            return Err(NodeError::forbidden(format!(
                "role `{role}` may not call `{}.{capability}`",
                ctx.name()
            )));
        }
        if p.user.is_some() || p.role.is_some() {
            return Err(NodeError::forbidden(format!(
                "only a gateway ({}) names the user and role; `{caller}` reads as itself",
                self.policy.gateways.join(", ")
            )));
        }
        let role = self.own_role(caller)?;
        if self.policy.allows(role, ctx.name(), capability) {
            return Ok(());
        }
        Err(NodeError::forbidden(format!(
            "role `{role}` may not call `{}.{capability}`",
            ctx.name()
        )))
    }

    /// The role of a caller that calls as itself, or why it has none.
    fn own_role(&self, caller: &str) -> Result<&str, NodeError> {
        self.policy.role_of(caller).ok_or_else(|| {
            NodeError::forbidden(format!(
                "`{caller}` has no role in ctrld's policy (`users`)"
            ))
        })
    }

    /// Who the call is for and in which role: a gateway names them; anyone else calls as
    /// itself, with the role the policy gives its name.
    fn identity(&self, ctx: &Context, p: &Call) -> Result<(String, String), NodeError> {
        let caller = ctx.caller().unwrap_or_default();
        if self.policy.gateways.iter().any(|g| g == caller) {
            let user = name_field("user", p.user.as_deref())?;
            let role = name_field("role", p.role.as_deref())?;
            if !self.policy.roles.contains_key(&role) {
                return Err(NodeError::invalid_params(format!(
                    "role `{role}` is not in ctrld's policy"
                ))
                .with_details(json!({ "field": "role" })));
            }
            return Ok((user, role));
        }
        if p.user.is_some() || p.role.is_some() {
            return Err(NodeError::forbidden(format!(
                "only a gateway ({}) names the user and role; `{caller}` calls as itself",
                self.policy.gateways.join(", ")
            )));
        }
        let role = self.own_role(caller)?;
        Ok((caller.to_owned(), role.to_owned()))
    }

    /// Writes `text` in the logbook, tagged with the user and role.
    async fn log(&self, ctx: &Context, kind: &str, text: String, user: &str, role: &str) {
        let entry = LogEntry {
            tags: vec![
                "ctrld".to_owned(),
                format!("user:{user}"),
                format!("role:{role}"),
            ],
            ..LogEntry::new(kind, text)
        };
        if let Err(e) = ctx.send(LogEntry::TOPIC, "*", &entry).await {
            tracing::warn!(kind, "cannot send a logbook entry: {}", error_chain(&e));
        }
    }

    /// A refusal, logged (at most 60 a minute per person, and 60 for all whose identity
    /// failed; the next logged one counts the rest).
    async fn refuse(
        &self,
        ctx: &Context,
        e: NodeError,
        who: Option<(&str, &str)>,
        what: &str,
    ) -> NodeError {
        // Whose budget: the person once known; the callers that are nobody share one.
        let budget = who.map_or("", |(user, _)| user);
        if let Some(left_out) = self.refusals.admit(budget) {
            // A caller's name is whatever its message said: written as escaped text.
            let caller: String = ctx
                .caller()
                .unwrap_or("nobody")
                .chars()
                .take(LONGEST_NAME)
                .flat_map(char::escape_debug)
                .collect();
            let (user, role) = who.unwrap_or((caller.as_str(), "none"));
            let more = if left_out > 0 {
                let whose = if who.is_some() { " of theirs" } else { "" };
                format!(" ({left_out} more refusals{whose} since the last one logged)")
            } else {
                String::new()
            };
            self.log(
                ctx,
                "refused",
                format!(
                    "ctrld refused {what} for {user} ({role}): {}{more}",
                    e.message
                ),
                user,
                role,
            )
            .await;
        }
        e
    }
}

#[node]
impl Ctrld {
    /// The nodes ctrld knows (up, left or lost) with their capabilities
    #[capability]
    async fn nodes(&self, p: ReadFor, ctx: &Context) -> Result<Vec<NodeState>, NodeError> {
        self.may_read(ctx, "nodes", &p)?;
        self.counted().await;
        Ok(self.presence.all())
    }

    /// The lab at a glance: nodes, cald's jobs, readings datad counts as missing, the last reading of each standard
    #[capability]
    async fn status(&self, p: ReadFor, ctx: &Context) -> Result<Status, NodeError> {
        self.may_read(ctx, "status", &p)?;
        self.counted().await;
        let mut unknown = Vec::new();
        let mut ask = |node: &'static str, cap: &'static str| {
            let up = self.presence.is_up(node);
            if !up {
                unknown.push(format!("{node} is not running: its `{cap}` is unknown"));
            }
            let ctx = ctx.clone();
            async move {
                if !up {
                    return Err(String::new());
                }
                ctx.request_timeout(node, cap, json!({}), Duration::from_secs(2))
                    .await
                    .map_err(|e| format!("{node}: {}", error_chain(&e)))
            }
        };
        let (jobs, stats) = tokio::join!(ask("cald", "jobs"), ask("datad", "stats"));
        let mut keep = |r: Result<Value, String>| match r {
            Ok(v) => Some(v),
            Err(e) => {
                if !e.is_empty() {
                    unknown.push(e);
                }
                None
            }
        };
        let jobs = keep(jobs);
        let missing = keep(stats).and_then(|s| s.get("missing").cloned());
        Ok(Status {
            nodes: self.presence.all(),
            jobs,
            missing,
            readings: self.readings.all(),
            unknown,
            ignored_names: self.presence.ignored.load(Ordering::Relaxed),
        })
    }

    /// The capabilities of a node (as its `map` says) that a role may call through ctrld: a gateway asks for the person it names, anyone else for itself
    #[capability]
    async fn allowed(&self, p: AllowedOn, ctx: &Context) -> Result<Vec<String>, NodeError> {
        id_field("node", &p.node)?;
        // What one may call is no secret from oneself: the identity a call would have.
        let call = Call {
            node: p.node.clone(),
            capability: String::new(),
            params: Map::new(),
            user: p.user,
            role: p.role,
            timeout_s: None,
        };
        let (_, role) = self.identity(ctx, &call)?;
        self.counted().await;
        let known = self.presence.capabilities_of(&p.node).unwrap_or_default();
        Ok(known
            .into_iter()
            .filter(|c| self.policy.allows(&role, &p.node, c))
            .collect())
    }

    /// Call a node's capability for a user, when ctrld's policy lets the user's role make that call; a call that changes something, or is refused, is logged
    #[capability]
    async fn call(&self, p: Call, ctx: &Context) -> Result<Value, NodeError> {
        // Checked first: what the logbook then says of the call is what it was.
        id_field("node", &p.node)?;
        id_field("capability", &p.capability)?;
        let what = format!("{}.{}", p.node, p.capability);
        let (user, role) = match self.identity(ctx, &p) {
            Ok(who) => who,
            Err(e) => return Err(self.refuse(ctx, e, None, &what).await),
        };
        let who = Some((user.as_str(), role.as_str()));
        if p.node == ctx.name() && p.capability == "call" {
            return Err(
                NodeError::invalid_params("ctrld does not forward a call to itself")
                    .with_details(json!({ "field": "capability" })),
            );
        }
        // A capability the node does not have is a mistake to name, not a refusal to log.
        self.counted().await;
        if let Some(known) = self.presence.capabilities_of(&p.node) {
            if !known.contains(&p.capability) {
                return Err(NodeError::new(
                    mqttcal_core::ErrorCode::UnknownCapability,
                    format!(
                        "`{}` has no capability `{}` (it has: {})",
                        p.node,
                        p.capability,
                        known.join(", ")
                    ),
                )
                .with_details(
                    json!({ "field": "capability", "node": p.node, "capabilities": known }),
                ));
            }
        }
        if !self.policy.allows(&role, &p.node, &p.capability) {
            let e = NodeError::forbidden(format!("role `{role}` may not call `{what}`"));
            return Err(self.refuse(ctx, e, who, &what).await);
        }
        if !self.presence.is_up(&p.node) {
            let up: Vec<String> = self
                .presence
                .all()
                .into_iter()
                .filter(|n| n.status == NodeStatus::Up)
                .map(|n| n.name)
                .collect();
            return Err(NodeError::link(format!(
                "`{}` is not running (nodes up: {})",
                p.node,
                if up.is_empty() {
                    "none".to_owned()
                } else {
                    up.join(", ")
                }
            ))
            .with_details(json!({ "reason": "not_running", "node": p.node })));
        }
        // What a node records in somebody's name (tpld's `by`, logd's `author`) is
        // forwarded only in the caller's own: the node trusts ctrld to have checked it.
        let mut params = p.params;
        for field in NAMED_FIELDS {
            if let Some(named) = params.get(field) {
                if named.as_str().map(str::trim) != Some(user.as_str()) {
                    let e = NodeError::forbidden(format!(
                        "`{field}` must be the caller's own name (`{user}`): ctrld forwards a step only in its caller's name"
                    ));
                    return Err(self.refuse(ctx, e, who, &what).await);
                }
                params.insert(field.to_owned(), json!(user));
            }
        }
        for (node, capability, field) in SIGNED {
            if p.node == node && p.capability == capability && !params.contains_key(field) {
                params.insert(field.to_owned(), json!(user));
            }
        }
        let forged = params
            .get("tags")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t.as_str().is_some_and(reserved_tag)));
        if forged {
            let e = NodeError::forbidden(
                "tags `ctrld`, `user:…`, `role:…` and `sender:…` are written by ctrld and logd only",
            );
            return Err(self.refuse(ctx, e, who, &what).await);
        }
        let Some(_slot) = self.in_flight.take(&user) else {
            return Err(NodeError::busy(format!(
                "{user} has {CALLS_PER_USER} calls in flight through ctrld already: wait for one to end"
            )));
        };
        let timeout = Duration::from_secs_f64(p.timeout_s.unwrap_or(10.0).clamp(0.1, 300.0));
        let outcome = ctx
            .request_timeout(&p.node, &p.capability, Value::Object(params), timeout)
            .await
            .map_err(|e| match e {
                CallError::Remote { mut error, .. } => {
                    error.message = format!("{}: {}", p.node, error.message);
                    error
                }
                other => NodeError::link(format!("{}: {}", p.node, error_chain(&other))),
            });
        if !self.policy.only_reads(&p.node, &p.capability) {
            let how = match &outcome {
                Ok(_) => "done".to_owned(),
                Err(e) => format!("failed ({}: {})", e.code.as_str(), e.message),
            };
            self.log(
                ctx,
                "call",
                format!("{user} ({role}) called {what} through ctrld: {how}"),
                &user,
                &role,
            )
            .await;
        }
        outcome
    }
}

/// Asks every node for `ping` and `map` (a census), so presence is whole whatever ctrld
/// missed while it was down.
async fn census(ctx: &Context, presence: &Presence) {
    let gather = Gather {
        timeout: Duration::from_millis(800),
        expect: None,
    };
    // Both at once: the census takes one gathering's time.
    let (pongs, maps) = tokio::join!(
        ctx.gather("ping", json!({}), gather),
        ctx.gather("map", json!({}), gather)
    );
    if let Ok(pongs) = pongs {
        for p in pongs {
            let epoch = p
                .reply
                .as_ref()
                .and_then(|r| r.get("epoch"))
                .and_then(Value::as_u64);
            presence.set(&p.from, NodeStatus::Up, epoch);
        }
    }
    if let Ok(maps) = maps {
        for m in maps {
            if let Some(reply) = &m.reply {
                presence.mapped(&m.from, reply);
            }
        }
    }
}

/// How often ctrld counts the nodes again; a node up that neither answers a census nor
/// sends anything for [`SILENT`] is marked lost.
const CENSUS_EVERY: Duration = Duration::from_secs(30);
/// See [`CENSUS_EVERY`].
const SILENT: Duration = Duration::from_secs(90);

/// The capabilities of `name`, which said hello (at most [`MAPS_AT_ONCE`] asked at once: a
/// flood of hellos is not a flood of requests).
async fn map_of(ctx: Context, presence: Arc<Presence>, name: String, permit: OwnedSemaphorePermit) {
    if let Ok(reply) = ctx
        .request_timeout(&name, "map", json!({}), Duration::from_secs(2))
        .await
    {
        presence.mapped(&name, &reply);
    }
    drop(permit);
}

/// See [`map_of`]; a node left unmapped is mapped by the next census.
const MAPS_AT_ONCE: usize = 8;

/// ctrld as a node named `name`; a policy that cannot be read stops it here.
pub fn node(name: &str, config: CtrldConfig) -> Result<NodeBuilder, PolicyError> {
    let policy = config.load_policy()?;
    tracing::info!(
        node = name,
        roles = ?policy.roles.keys().collect::<Vec<_>>(),
        gateways = ?policy.gateways,
        "ctrld forwards calls as its policy allows"
    );
    let presence = Arc::new(Presence::default());
    let (census_done, counted) = tokio::sync::watch::channel(false);
    let heard = presence.clone();
    let census_presence = presence.clone();
    let maps = Arc::new(Semaphore::new(MAPS_AT_ONCE));
    let readings = Arc::new(readings::LastReadings::default());
    let heard_readings = readings.clone();
    Ok(NodeBuilder::new(name)
        .on_topic(topics::MEAS, move |env, _ctx| {
            heard_readings.heard(&env);
            std::future::ready(())
        })
        .on_topic(topics::ANNOUNCE, move |env, ctx| {
            let presence = heard.clone();
            let maps = maps.clone();
            async move {
                if presence.announced(&env) == Some(Heard::Unmapped) && env.from != ctx.name() {
                    if let Ok(permit) = maps.try_acquire_owned() {
                        tokio::spawn(map_of(ctx, presence, env.from.clone(), permit));
                    }
                }
            }
        })
        .background(move |ctx| async move {
            census(&ctx, &census_presence).await;
            census_done.send_replace(true);
            loop {
                tokio::time::sleep(CENSUS_EVERY).await;
                let started = mqttcal_core::clock::Timestamp::now().as_secs_f64();
                census(&ctx, &census_presence).await;
                census_presence.lose_silent(started - SILENT.as_secs_f64());
            }
        })
        .register(Ctrld {
            policy,
            presence,
            counted,
            refusals: Default::default(),
            in_flight: InFlight::default(),
            readings,
        }))
}
