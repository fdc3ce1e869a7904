//! The broker's ACL for production mode, generated from ctrld's policy, so that one file
//! says who may do what: people (and gateways) publish requests to ctrld only, nodes to any
//! node, and only the administrators stop nodes.

use super::{Policy, PolicyError};

/// Mosquitto ACL lines for the addressed topic layout (docs/protocol.md), from `policy`:
/// `nodes` are the logins of nodes (requests to any node, data, replies and logbook entries
/// under their own name; `ctrld` is one of them), the policy's `users` and `gateways`
/// publish requests to `ctrld` (ctrld's name) only, and `admins` may stop nodes (and send
/// requests to any node, for the stop's request and for maintenance). `prefix` (e.g.
/// `lab1`, or empty) goes in front of every topic. A user named by a pattern (`cli-*`) is
/// listed as a comment: a broker login is a name. A name that is not a login, or a person
/// also named as a node or an administrator, is an error: the ACL would grant more than
/// the policy says. A gateway also announces itself and replies (to `ping` and `map`) under
/// its own name.
///
/// ```
/// use mqttcal_nodes::ctrld::{mosquitto_acl, Policy};
/// let mut policy = Policy::default();
/// policy.users.insert("alice".into(), "operator".into());
/// let acl = mosquitto_acl(&policy, "ctrld", &["labd".into()], &["admin".into()], "").unwrap();
/// assert!(acl.contains("user alice\ntopic write request/ctrld/alice\n"));
/// assert!(acl.contains("user labd\ntopic write request/+/labd\n"));
/// ```
pub fn mosquitto_acl(
    policy: &Policy,
    ctrld: &str,
    nodes: &[String],
    admins: &[String],
    prefix: &str,
) -> Result<String, PolicyError> {
    mosquitto_acl_with_intakes(policy, ctrld, nodes, &[], admins, prefix)
}

/// [`mosquitto_acl`], with the logins of nodes' durable intakes (`(login, node)`, e.g.
/// `("logd-intake", "logd")`): an intake subscribes as its node, so it reads the control
/// messages addressed to that node (the stops logd writes in the logbook).
pub fn mosquitto_acl_with_intakes(
    policy: &Policy,
    ctrld: &str,
    nodes: &[String],
    intakes: &[(String, String)],
    admins: &[String],
    prefix: &str,
) -> Result<String, PolicyError> {
    policy.check()?;
    let login = |c: char| c.is_ascii_alphanumeric() || "_-@.".contains(c);
    let mut nodes: Vec<String> = nodes.to_vec();
    if !nodes.iter().any(|n| n == ctrld) {
        nodes.push(ctrld.to_owned());
    }
    for name in nodes
        .iter()
        .chain(admins)
        .chain(intakes.iter().flat_map(|(l, n)| [l, n]))
    {
        if name.is_empty() || !name.chars().all(login) {
            return Err(PolicyError(format!(
                "`{}` is not a login (ASCII letters, digits and `_-@.`)",
                name.escape_debug()
            )));
        }
    }
    let people: std::collections::BTreeSet<&String> =
        policy.users.keys().chain(policy.gateways.iter()).collect();
    if let Some(both) = people
        .iter()
        .find(|p| nodes.contains(p) || admins.contains(p))
    {
        return Err(PolicyError(format!(
            "`{both}` is both a person (users, gateways) and a node or an administrator: give it one place"
        )));
    }
    let t = |topic: &str| {
        if prefix.is_empty() {
            topic.to_owned()
        } else {
            format!("{prefix}/{topic}")
        }
    };
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(
        "# Mosquitto ACL for an mqttcal lab in production mode (the addressed topic layout),"
            .into(),
    );
    line(
        "# generated from ctrld's policy by `mqttcal acl`: regenerate it when the policy changes."
            .into(),
    );
    line(
        "# %u is the login, which `use_username_as_clientid true` makes the client id too.".into(),
    );
    line(String::new());
    line(
        "# Everyone reads what is addressed to them and the lab's data; nobody writes by default."
            .into(),
    );
    for topic in [
        "request/%u/+",
        "request/*/+",
        "reply/%u/+",
        "system/%u/+",
        "system/*/+",
        "meas/+",
        "announce/+",
        "log/+",
        "progress/+",
    ] {
        line(format!("pattern read {}", t(topic)));
    }
    line(String::new());
    line("# Nodes: requests to any node, replies, data, announcements and logbook entries under their own name.".into());
    for node in &nodes {
        line(format!("user {node}"));
        for topic in [
            "request/+",
            "reply/+",
            "meas",
            "announce",
            "log",
            "progress",
        ] {
            line(format!("topic write {}/{node}", t(topic)));
        }
        line(String::new());
    }
    if !intakes.is_empty() {
        line("# Durable intakes: they subscribe as their node.".into());
        for (login, node) in intakes {
            line(format!("user {login}"));
            line(format!("topic read {}/+", t(&format!("system/{node}"))));
            line(String::new());
        }
    }
    line(format!(
        "# People and gateways: requests to {ctrld} only, which forwards what their role allows."
    ));
    for person in people {
        if person.contains('*') {
            line(format!(
                "# `{person}` is a pattern: give each login it stands for a line of its own"
            ));
            continue;
        }
        line(format!("user {person}"));
        line(format!(
            "topic write {}/{person}",
            t(&format!("request/{ctrld}"))
        ));
        // A gateway is a node too: it says hello and answers `ping` and `map`.
        if policy.gateways.contains(person) {
            line(format!("topic write {}/{person}", t("announce")));
            line(format!("topic write {}/{person}", t("reply/+")));
        }
        line(String::new());
    }
    line("# Administrators: stops (nodes also check `stop-from`) and requests to any node.".into());
    for admin in admins {
        line(format!("user {admin}"));
        line(format!("topic write {}/{admin}", t("system/+")));
        line(format!("topic write {}/{admin}", t("request/+")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_write_requests_to_ctrld_only_and_nodes_under_their_name() {
        let mut policy = Policy::default();
        policy.users.insert("bob".into(), "viewer".into());
        policy.users.insert("cli-*".into(), "viewer".into());
        let acl = mosquitto_acl(
            &policy,
            "ctrld",
            &["labd".into()],
            &["admin".into()],
            "lab1",
        )
        .unwrap();
        assert!(
            acl.contains("user bob\ntopic write lab1/request/ctrld/bob\n\n"),
            "{acl}"
        );
        assert!(
            acl.contains("user webd\ntopic write lab1/request/ctrld/webd\ntopic write lab1/announce/webd\ntopic write lab1/reply/+/webd\n\n"),
            "{acl}"
        );
        assert!(
            acl.contains("user ctrld\ntopic write lab1/request/+/ctrld\n"),
            "{acl}"
        );
        assert!(acl.contains("topic write lab1/meas/labd\n"), "{acl}");
        assert!(acl.contains("topic write lab1/progress/labd\n"), "{acl}");
        assert!(acl.contains("pattern read lab1/progress/+\n"), "{acl}");
        assert!(
            acl.contains("user admin\ntopic write lab1/system/+/admin\n"),
            "{acl}"
        );
        assert!(acl.contains("# `cli-*` is a pattern"), "{acl}");
        let with = mosquitto_acl_with_intakes(
            &policy,
            "ctrld",
            &["logd".into()],
            &[("logd-intake".into(), "logd".into())],
            &["admin".into()],
            "",
        )
        .unwrap();
        assert!(
            with.contains("user logd-intake\ntopic read system/logd/+\n"),
            "{with}"
        );
        // No pattern grants a write to everyone.
        assert!(
            !acl.lines().any(|l| l.starts_with("pattern write")),
            "{acl}"
        );
    }

    #[test]
    fn names_that_are_not_logins_and_overlaps_are_refused() {
        let admin = ["admin".to_owned()];
        let mut policy = Policy::default();
        policy
            .users
            .insert("alice\ntopic write #".into(), "viewer".into());
        assert!(mosquitto_acl(&policy, "ctrld", &[], &admin, "").is_err());
        for bad in ["+", "#", "a/b", ""] {
            let e =
                mosquitto_acl(&Policy::default(), "ctrld", &[bad.into()], &admin, "").unwrap_err();
            assert!(e.0.contains("not a login"), "{bad}: {e}");
        }
        let mut policy = Policy::default();
        policy.users.insert("labd".into(), "viewer".into());
        let e = mosquitto_acl(&policy, "ctrld", &["labd".into()], &admin, "").unwrap_err();
        assert!(e.0.contains("both a person"), "{e}");
        let e = mosquitto_acl(&Policy::default(), "ctrld", &[], &["webd".into()], "").unwrap_err();
        assert!(e.0.contains("both a person"), "{e}");
    }
}
