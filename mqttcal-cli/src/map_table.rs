//! `map` on a terminal: each node's capabilities as a table.

use std::io::Write;

use mqttcal_core::envelope::Envelope;
use serde_json::Value;

use super::terminal::safe;

/// The widest a capability id is shown.
const ID_WIDTH: usize = 40;

/// Prints each node's capabilities, sorted by node: the id, its parameters (`?` when
/// optional) and its description.
pub(crate) fn print(replies: &[Envelope]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(render(replies).as_bytes());
    let _ = out.flush();
}

/// The table [`print()`] prints.
fn render(replies: &[Envelope]) -> String {
    let mut out = Vec::new();
    let mut sorted: Vec<&Envelope> = replies.iter().collect();
    sorted.sort_by(|a, b| a.from.cmp(&b.from));
    for r in sorted {
        // What nodes say is shown safe: no control characters, nothing without end.
        let from = safe(&r.from, 64);
        let Some(caps) = r.reply.as_ref().and_then(Value::as_array) else {
            if let Some(e) = &r.error {
                let _ = writeln!(out, "{from}: {}", safe(&e.message, 300));
            }
            continue;
        };
        let _ = writeln!(out, "{from} ({} capabilities)", caps.len());
        let ids: Vec<String> = caps
            .iter()
            .map(|c| safe(c.get("id").and_then(Value::as_str).unwrap_or("?"), ID_WIDTH))
            .collect();
        let width = ids
            .iter()
            .map(|i| i.chars().count())
            .max()
            .unwrap_or(0)
            .min(ID_WIDTH);
        for (c, id) in caps.iter().zip(&ids) {
            let params = safe(&params_of(c.get("params")), 300);
            let _ = writeln!(out, "  {id:<width$}  {params}");
            if let Some(d) = c.get("description").and_then(Value::as_str) {
                if !d.is_empty() {
                    let d = safe(&d.replace('\n', " "), 500);
                    let _ = writeln!(out, "  {:<width$}  {d}", "");
                }
            }
        }
        let _ = writeln!(out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `{a, b?}`: the parameters a schema names, `?` after those not required; `{}` for none.
fn params_of(schema: Option<&Value>) -> String {
    let Some(schema) = schema else {
        return "{}".into();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let names: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.keys()
                .map(|k| {
                    if required.contains(&k.as_str()) {
                        k.clone()
                    } else {
                        format!("{k}?")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    format!("{{{}}}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_hostile_node_says_is_shown_short_and_harmless() {
        let mut env = Envelope::new("evil\u{1b}[2J", "cli");
        env.reply = Some(serde_json::json!([
            {"id": "L".repeat(65_536), "description": "\u{1b}]0;PWNED\u{7}\nsecond line"},
            {"id": "ok", "description": "fine"}
        ]));
        let shown = render(&[env]);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown}"
        );
        assert!(shown.lines().all(|l| l.chars().count() < 600), "{shown}");
        assert!(shown.contains("  ok "), "{shown}");
    }

    #[test]
    fn parameters_are_listed_with_the_optional_ones_marked() {
        let schema = serde_json::json!({
            "properties": {"channel": {}, "unit": {}},
            "required": ["channel"]
        });
        assert_eq!(params_of(Some(&schema)), "{channel, unit?}");
        assert_eq!(params_of(Some(&serde_json::json!({}))), "{}");
    }
}
