//! What the command says when a call meets silence: whether the node is alive, what it
//! was probably meant to be, and what to try next.

use std::time::Duration;

use mqttcal_core::suggest::closest;
use mqttcal_core::{Context, Gather};
use serde_json::{Map, Value};

use super::connect::Settings;

/// How long the explanations wait for `ping` and `map` answers.
const LOOK: Duration = Duration::from_secs(1);

/// The nodes that answer `ping` to `*` within a second, by name.
async fn answering(ctx: &Context) -> Vec<String> {
    let gather = Gather {
        timeout: LOOK,
        expect: None,
    };
    let mut names: Vec<String> = ctx
        .request_envelopes("*", "ping", Map::new(), gather)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.from)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Where the command looked: the broker, and the prefix when there is one.
pub(crate) fn whereabouts(settings: &Settings) -> String {
    let url = settings.config.mqtt.url();
    match settings.config.prefix.as_str() {
        "" => url,
        p => format!("{url}, prefix `{p}`"),
    }
}

/// Why `node` did not answer `capability` within `waited`.
pub(crate) async fn silent_node(
    ctx: &Context,
    settings: &Settings,
    node: &str,
    capability: &str,
    waited: Duration,
) -> String {
    let secs = waited.as_secs_f64();
    let longer = (secs * 6.0).max(30.0).ceil();
    if ctx
        .request_timeout(node, "ping", Map::new(), LOOK)
        .await
        .is_ok()
    {
        return format!(
            "`{node}` is running (it answered `ping`) but did not reply to `{capability}` within {secs} s: the call may need longer (`--timeout {longer}`), or be stuck (`mqttcal ping {node}` lists its running calls)"
        );
    }
    let names = answering(ctx).await;
    let at = whereabouts(settings);
    if let Some(near) = closest(node, names.iter().map(String::as_str)) {
        return format!("no node `{node}` answers at {at}: did you mean `{near}`?");
    }
    let listed = if names.is_empty() {
        "no node answers `ping` there at all: is the lab running, and is this its broker (`--broker`, MQTTCAL_BROKER), prefix and layout (production mode: `--layout addressed`)?".to_owned()
    } else {
        format!("the nodes that answer there are {}", names.join(", "))
    };
    format!(
        "no reply from `{node}` to `{capability}` within {secs} s, and it does not answer `ping` at {at}: {listed}"
    )
}

/// Why no node answered a call of `capability` to `*`: no node has it, or those that do
/// were silent.
pub(crate) async fn silent_broadcast(
    ctx: &Context,
    settings: &Settings,
    capability: &str,
    waited: Duration,
) -> String {
    let gather = Gather {
        timeout: LOOK,
        expect: None,
    };
    let maps = ctx
        .request_envelopes("*", "map", Map::new(), gather)
        .await
        .unwrap_or_default();
    let at = whereabouts(settings);
    if maps.is_empty() {
        return format!(
            "no node answers at {at}: is the lab running, and is this its broker (`--broker`, MQTTCAL_BROKER), prefix and layout?"
        );
    }
    let mut having = Vec::new();
    let mut ids = Vec::new();
    for m in &maps {
        for cap in m
            .reply
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = cap.get("id").and_then(Value::as_str) {
                if id == capability {
                    having.push(m.from.clone());
                }
                ids.push(id.to_owned());
            }
        }
    }
    if having.is_empty() {
        ids.sort();
        ids.dedup();
        let hint = closest(capability, ids.iter().map(String::as_str))
            .map(|near| format!(": did you mean `{near}`?"))
            .unwrap_or_else(|| " (`mqttcal map` lists them)".to_owned());
        return format!(
            "none of the {} node(s) at {at} has a capability `{capability}`{hint}",
            maps.len()
        );
    }
    having.sort();
    format!(
        "{} {} `{capability}` but no reply came within {} s: give them longer (`--timeout`)",
        having.join(", "),
        if having.len() == 1 { "has" } else { "have" },
        waited.as_secs_f64()
    )
}
