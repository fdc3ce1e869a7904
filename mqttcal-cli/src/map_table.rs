//! `map` on a terminal: each node's capabilities as a table.

use std::io::Write;

use mqttcal_core::envelope::Envelope;
use serde_json::Value;

/// Prints each node's capabilities, sorted by node: the id, its parameters (`?` when
/// optional) and its description.
pub(crate) fn print(replies: &[Envelope]) {
    let mut out = std::io::stdout().lock();
    let mut sorted: Vec<&Envelope> = replies.iter().collect();
    sorted.sort_by(|a, b| a.from.cmp(&b.from));
    for r in sorted {
        let Some(caps) = r.reply.as_ref().and_then(Value::as_array) else {
            if let Some(e) = &r.error {
                let _ = writeln!(out, "{}: {}", r.from, e.message);
            }
            continue;
        };
        let _ = writeln!(out, "{} ({} capabilities)", r.from, caps.len());
        let width = caps
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str))
            .map(str::len)
            .max()
            .unwrap_or(0);
        for c in caps {
            let id = c.get("id").and_then(Value::as_str).unwrap_or("?");
            let params = params_of(c.get("params"));
            let _ = writeln!(out, "  {id:<width$}  {params}");
            if let Some(d) = c.get("description").and_then(Value::as_str) {
                if !d.is_empty() {
                    let _ = writeln!(out, "  {:<width$}  {}", "", d.replace('\n', " "));
                }
            }
        }
        let _ = writeln!(out);
    }
    let _ = out.flush();
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
    fn parameters_are_listed_with_the_optional_ones_marked() {
        let schema = serde_json::json!({
            "properties": {"channel": {}, "unit": {}},
            "required": ["channel"]
        });
        assert_eq!(params_of(Some(&schema)), "{channel, unit?}");
        assert_eq!(params_of(Some(&serde_json::json!({}))), "{}");
    }
}
