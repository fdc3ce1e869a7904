//! ctrld: the lab's one entry point. It knows which nodes are up and what they can do (from
//! `announce`, rebuilt by a census when it starts), gives the lab's aggregate `status`, and
//! forwards a call to a node only when its policy lets the caller's role make it; a call
//! that changes something, or that is refused, is written in the logbook with the user and
//! the role.
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

mod acl;
mod policy;
mod presence;

pub use acl::mosquitto_acl;
pub use policy::{Policy, PolicyError};
use presence::{Heard, Presence};
pub use presence::{NodeState, NodeStatus};

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

/// The lab at a glance.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Status {
    /// Every node ctrld knows, by name.
    pub nodes: Vec<NodeState>,
    /// cald's jobs (planned or running), when cald answers.
    pub jobs: Option<Value>,
    /// Readings datad counts as missing, per sender, when datad answers.
    pub missing: Option<Value>,
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
    refusals: crate::budget::RefusalBudget,
}

/// The longest name of a user or role ctrld accepts.
const LONGEST_NAME: usize = 100;

fn name_field(field: &str, value: Option<&str>) -> Result<String, NodeError> {
    let v = value.map(str::trim).unwrap_or_default();
    if v.is_empty() || v.chars().count() > LONGEST_NAME || v.chars().any(char::is_control) {
        return Err(NodeError::invalid_params(format!(
            "`{field}` must be a name of 1 to {LONGEST_NAME} printable characters"
        ))
        .with_details(json!({ "field": field })));
    }
    Ok(v.to_owned())
}

impl Ctrld {
    /// Waits (2 s at most) for the census at start, so presence is whole when asked.
    async fn counted(&self) {
        let mut done = self.counted.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), done.wait_for(|d| *d)).await;
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
        match self.policy.role_of(caller) {
            Some(role) => Ok((caller.to_owned(), role.to_owned())),
            None => Err(NodeError::forbidden(format!(
                "`{caller}` has no role in ctrld's policy (`users`)"
            ))),
        }
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

    /// A refusal, logged (at most 60 a minute; the next logged one counts the rest).
    async fn refuse(
        &self,
        ctx: &Context,
        e: NodeError,
        who: Option<(&str, &str)>,
        what: &str,
    ) -> NodeError {
        if let Some(left_out) = self.refusals.admit() {
            let (user, role) = who.unwrap_or((ctx.caller().unwrap_or("nobody"), "none"));
            let more = if left_out > 0 {
                format!(" ({left_out} more refusals since the last one logged)")
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
    async fn nodes(&self) -> Result<Vec<NodeState>, NodeError> {
        self.counted().await;
        Ok(self.presence.all())
    }

    /// The lab at a glance: nodes, cald's jobs, readings datad counts as missing
    #[capability]
    async fn status(&self, ctx: &Context) -> Result<Status, NodeError> {
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
            unknown,
            ignored_names: self.presence.ignored.load(Ordering::Relaxed),
        })
    }

    /// Call a node's capability for a user, when ctrld's policy lets the user's role make that call; a call that changes something, or is refused, is logged
    #[capability]
    async fn call(&self, p: Call, ctx: &Context) -> Result<Value, NodeError> {
        let what = format!("{}.{}", p.node, p.capability);
        let (user, role) = match self.identity(ctx, &p) {
            Ok(who) => who,
            Err(e) => return Err(self.refuse(ctx, e, None, &what).await),
        };
        let who = Some((user.as_str(), role.as_str()));
        if p.node == "*" || p.node.is_empty() {
            return Err(
                NodeError::invalid_params("ctrld forwards a call to one node, not `*`")
                    .with_details(json!({ "field": "node" })),
            );
        }
        if p.node == ctx.name() && p.capability == "call" {
            return Err(
                NodeError::invalid_params("ctrld does not forward a call to itself")
                    .with_details(json!({ "field": "capability" })),
            );
        }
        if !self.policy.allows(&role, &p.node, &p.capability) {
            let e = NodeError::forbidden(format!("role `{role}` may not call `{what}`"));
            return Err(self.refuse(ctx, e, who, &what).await);
        }
        self.counted().await;
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
        let timeout = Duration::from_secs_f64(p.timeout_s.unwrap_or(10.0).clamp(0.1, 300.0));
        let outcome = ctx
            .request_timeout(&p.node, &p.capability, Value::Object(p.params), timeout)
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

/// The capabilities of `name`, which said hello.
async fn map_of(ctx: Context, presence: Arc<Presence>, name: String) {
    if let Ok(reply) = ctx
        .request_timeout(&name, "map", json!({}), Duration::from_secs(2))
        .await
    {
        presence.mapped(&name, &reply);
    }
}

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
    Ok(NodeBuilder::new(name)
        .on_topic(topics::ANNOUNCE, move |env, ctx| {
            let presence = heard.clone();
            async move {
                if presence.announced(&env) == Some(Heard::Hello) && env.from != ctx.name() {
                    tokio::spawn(map_of(ctx, presence, env.from.clone()));
                }
            }
        })
        .background(move |ctx| async move {
            census(&ctx, &census_presence).await;
            census_done.send_replace(true);
        })
        .register(Ctrld {
            policy,
            presence,
            counted,
            refusals: Default::default(),
        }))
}
