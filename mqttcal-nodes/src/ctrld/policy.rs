//! Who may call what through ctrld: roles mapped to `node.capability` patterns.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// ctrld's policy: the roles and what each may call, the callers it knows by name, the
/// gateways it believes about their users, and the calls that only read.
///
/// A pattern is `node.capability`, where `*` stands for any run of characters
/// (`*.ping`, `cald.*`, `datad.save_*`, `*.*` for everything).
///
/// ```
/// use mqttcal_nodes::ctrld::Policy;
/// let policy = Policy::default();
/// assert!(policy.allows("viewer", "cald", "jobs"));
/// assert!(!policy.allows("viewer", "cald", "start"));
/// assert!(policy.allows("operator", "cald", "start"));
/// assert!(policy.allows("admin", "labd", "anything"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Each role and the capabilities it may call (patterns); the built-in roles when
    /// absent.
    #[serde(default = "default_roles")]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Callers that speak for themselves (their sender name; their login in the addressed
    /// layout with the shipped ACL) and their role. A name may be a pattern (`cli-*`); an
    /// exact name is looked up first.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Senders trusted to name the user and role they call for (webd, which logs people
    /// in); `[webd]` when absent.
    #[serde(default = "default_gateways")]
    pub gateways: Vec<String>,
    /// Calls that only read: not written to the logbook when allowed (the UI polls them).
    #[serde(default = "default_reads")]
    pub reads: Vec<String>,
}

/// What only reads, among the reference nodes' capabilities.
fn default_reads() -> Vec<String> {
    [
        "*.ping",
        "*.map",
        "*.status",
        "ctrld.nodes",
        "labd.settings",
        "labd.identify",
        "cald.jobs",
        "datad.query",
        "datad.stats",
        "datad.job",
        "datad.jobs",
        "datad.results",
        "datad.equipment",
        "datad.register",
        "datad.history",
        "datad.certificate",
        "datad.certificates",
        "datad.export",
        "logd.search",
        "logd.verify",
        "tpld.templates",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn default_gateways() -> Vec<String> {
    vec!["webd".to_owned()]
}

/// Three roles: `viewer` reads; `operator` also measures, checks items in and out, starts
/// and cancels jobs, writes in the logbook and drafts certificates and reports; `admin` may
/// call everything.
fn default_roles() -> BTreeMap<String, Vec<String>> {
    {
        let reads = default_reads();
        let mut operator = reads.clone();
        operator.extend(
            [
                "labd.measure",
                "cald.checkin",
                "cald.checkout",
                "cald.start",
                "cald.cancel",
                "logd.add",
                "tpld.certificate",
                "tpld.report",
                "tpld.logbook",
            ]
            .map(str::to_owned),
        );
        [
            ("viewer".to_owned(), reads),
            ("operator".to_owned(), operator),
            ("admin".to_owned(), vec!["*.*".to_owned()]),
        ]
        .into()
    }
}

impl Default for Policy {
    /// The built-in roles (`viewer`, `operator`, `admin`), no users, `webd` as the gateway.
    fn default() -> Self {
        Self {
            roles: default_roles(),
            users: BTreeMap::new(),
            gateways: default_gateways(),
            reads: default_reads(),
        }
    }
}

/// A policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ctrld's policy: {0}")]
pub struct PolicyError(pub String);

impl Policy {
    /// Reads a policy from YAML (or JSON) text, checked.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        let policy: Self = serde_yaml_ng::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// Every pattern is `node.capability`, and every user's role exists.
    pub fn check(&self) -> Result<(), PolicyError> {
        let patterns = self
            .roles
            .iter()
            .flat_map(|(role, ps)| ps.iter().map(move |p| (format!("roles.{role}"), p)))
            .chain(self.reads.iter().map(|p| ("reads".to_owned(), p)));
        for (at, p) in patterns {
            if p.matches('.').count() != 1 || p.starts_with('.') || p.ends_with('.') {
                return Err(PolicyError(format!(
                    "`{p}` in `{at}` is not `node.capability` (e.g. `cald.start`, `*.ping`)"
                )));
            }
        }
        let login = |c: char| c.is_ascii_alphanumeric() || "_-@.".contains(c);
        for name in self.users.keys().chain(self.gateways.iter()) {
            let bare = name.replace('*', "");
            if name.is_empty() || name.len() > 100 || !bare.chars().all(login) {
                return Err(PolicyError(format!(
                    "`{}` is not a login: ASCII letters, digits and `_-@.` (and `*` in a user pattern)",
                    name.escape_debug()
                )));
            }
        }
        if let Some(g) = self.gateways.iter().find(|g| g.contains('*')) {
            return Err(PolicyError(format!(
                "gateway `{g}` must be a login, not a pattern"
            )));
        }
        for (user, role) in &self.users {
            if !self.roles.contains_key(role) {
                return Err(PolicyError(format!(
                    "user `{user}` has role `{role}`, which `roles` does not define"
                )));
            }
        }
        Ok(())
    }

    /// Whether `role` may call `capability` of `node`.
    pub fn allows(&self, role: &str, node: &str, capability: &str) -> bool {
        self.roles
            .get(role)
            .is_some_and(|ps| ps.iter().any(|p| matches(p, node, capability)))
    }

    /// The role of `caller`, who calls as itself: its own entry, else that of the longest
    /// pattern that matches it (the most specific).
    pub fn role_of(&self, caller: &str) -> Option<&str> {
        self.users
            .get(caller)
            .or_else(|| {
                self.users
                    .iter()
                    .filter(|(pattern, _)| pattern.contains('*') && glob(pattern, caller))
                    .max_by_key(|(pattern, _)| pattern.len())
                    .map(|(_, role)| role)
            })
            .map(String::as_str)
    }

    /// Whether the call only reads (and is not logged when allowed).
    pub fn only_reads(&self, node: &str, capability: &str) -> bool {
        self.reads.iter().any(|p| matches(p, node, capability))
    }
}

/// Whether the pattern `node.capability` matches: each side on its own, so a `*` never
/// reaches across the dot.
fn matches(pattern: &str, node: &str, capability: &str) -> bool {
    match pattern.split_once('.') {
        Some((n, c)) => glob(n, node) && glob(c, capability),
        None => false,
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run_of_characters() {
        for (p, t) in [
            ("*.ping", "labd.ping"),
            ("cald.*", "cald.start"),
            ("*.*", "x.y"),
            ("datad.save_*", "datad.save_job"),
            ("cald.start", "cald.start"),
            ("*a*b*", "xaybz"),
        ] {
            assert!(glob(p, t), "{p} matches {t}");
        }
        for (p, t) in [
            ("*.ping", "labd.pingx"),
            ("cald.*", "xcald.start"),
            ("datad.save_*", "datad.query"),
            ("cald.start", "cald.starts"),
            ("a*a", "a"),
        ] {
            assert!(!glob(p, t), "{p} does not match {t}");
        }
    }

    #[test]
    fn a_policy_is_checked_when_read() {
        let ok = Policy::from_yaml(
            "roles:\n  viewer: ['*.ping']\n  boss: ['*.*']\nusers:\n  alice: boss\n",
        )
        .unwrap();
        assert!(ok.allows("boss", "cald", "start"));
        assert!(!ok.allows("viewer", "cald", "start"));
        assert!(!ok.allows("nobody", "labd", "ping"));
        assert_eq!(ok.role_of("alice"), Some("boss"));
        assert_eq!(ok.role_of("bob"), None);
        let mut patterned = ok.clone();
        patterned.users.insert("cli-*".into(), "viewer".into());
        patterned.users.insert("cli-root".into(), "boss".into());
        patterned.users.insert("c*".into(), "boss".into());
        assert_eq!(
            patterned.role_of("cli-vm-42"),
            Some("viewer"),
            "the longest pattern"
        );
        assert_eq!(patterned.role_of("cli-root"), Some("boss"));
        assert_eq!(patterned.role_of("xcli-1"), None);
        assert_eq!(ok.gateways, ["webd"]);
        // The built-in roles when a policy names only its users.
        let users_only = Policy::from_yaml("users:\n  carla: operator\n").unwrap();
        assert!(users_only.allows("operator", "cald", "start"));
        // A `*` does not reach across the dot.
        assert!(!ok.allows("viewer", "cald", "x.ping"));
        assert!(!Policy::default().allows("viewer", "x.status", "y"));
        let e = Policy::from_yaml("users:\n  \"al ice\": viewer\n").unwrap_err();
        assert!(e.0.contains("not a login"), "{e}");
        let e = Policy::from_yaml("gateways: ['we*']\n").unwrap_err();
        assert!(e.0.contains("not a pattern"), "{e}");
        let e = Policy::from_yaml("roles:\n  viewer: ['ping']\n").unwrap_err();
        assert!(e.0.contains("`ping` in `roles.viewer`"), "{e}");
        let e =
            Policy::from_yaml("roles:\n  viewer: ['*.ping']\nusers:\n  bob: admin\n").unwrap_err();
        assert!(e.0.contains("role `admin`"), "{e}");
        let e = Policy::from_yaml("roles: {}\nrole: {}\n").unwrap_err();
        assert!(e.0.contains("role"), "{e}");
        Policy::default().check().unwrap();
    }
}
