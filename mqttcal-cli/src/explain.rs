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
        .iter()
        .map(|n| super::terminal::safe(n, 256))
        .collect()
}

/// Where the command looked: the broker, and the prefix when there is one.
pub(crate) fn whereabouts(settings: &Settings) -> String {
    let url = settings.config.mqtt.url();
    match settings.config.prefix.as_str() {
        "" => url,
        p => format!("{url}, prefix `{p}`"),
    }
}

/// How a call to one node ended without a reply.
pub(crate) struct Quiet {
    /// The timeout: from the request, or from the last progress message.
    pub(crate) waited: Duration,
    /// Whether the node reported progress about the call.
    pub(crate) progressed: bool,
    /// The ceiling, when the wait reached it.
    pub(crate) at_most: Option<Duration>,
}

impl Quiet {
    /// Only a timeout from the request.
    pub(crate) fn after(waited: Duration) -> Self {
        Self {
            waited,
            progressed: false,
            at_most: None,
        }
    }
}

/// Why `node` did not answer `capability` as `quiet` says.
pub(crate) async fn silent_node(
    ctx: &Context,
    settings: &Settings,
    node: &str,
    capability: &str,
    quiet: Quiet,
) -> String {
    let node = &super::terminal::safe(node, 256);
    let capability = &super::terminal::safe(capability, 256);
    if let Some(limit) = quiet.at_most {
        return format!(
            "no reply from `{node}` to `{capability}` within {} s, the most this command waits however long progress comes (`--max-wait`)",
            limit.as_secs_f64()
        );
    }
    let waited = quiet.waited;
    let secs = waited.as_secs_f64();
    let longer = (secs * 6.0).max(30.0).ceil();
    // Both looks at once: the answer comes within one LOOK.
    let (alive, names) = tokio::join!(
        ctx.request_timeout(node, "ping", Map::new(), LOOK),
        answering(ctx)
    );
    if alive.is_ok() {
        let after = if quiet.progressed {
            format!("reported progress on `{capability}`, then nothing for {secs} s")
        } else {
            format!("did not reply to `{capability}` within {secs} s")
        };
        return format!(
            "`{node}` is running (it answered `ping`) but {after}: the call may need longer (`--timeout {longer}`), or be stuck (`mqttcal ping {node}` shows how many calls it runs)"
        );
    }
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
    let capability = &super::terminal::safe(capability, 256);
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
                    having.push(super::terminal::safe(&m.from, 256));
                }
                ids.push(super::terminal::safe(id, 256));
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
