//! The pages, rendered on the server from Tera templates (every value escaped as HTML),
//! and our own script and style sheet.

use serde_json::Value;
use tera::{Context as Vars, Tera};

use crate::sessions::Session;

/// The pages' script: live updates, forms from JSON Schemas, the readings plot.
pub(crate) const APP_JS: &str = include_str!("../assets/app.js");
/// The pages' style sheet (responsive: one column below 700 px).
pub(crate) const APP_CSS: &str = include_str!("../assets/app.css");

const TEMPLATES: [(&str, &str); 11] = [
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("nodes.html", include_str!("../templates/nodes.html")),
    ("node.html", include_str!("../templates/node.html")),
    ("readings.html", include_str!("../templates/readings.html")),
    (
        "standards.html",
        include_str!("../templates/standards.html"),
    ),
    ("standard.html", include_str!("../templates/standard.html")),
    ("jobs.html", include_str!("../templates/jobs.html")),
    ("job.html", include_str!("../templates/job.html")),
    ("logbook.html", include_str!("../templates/logbook.html")),
    (
        "certificates.html",
        include_str!("../templates/certificates.html"),
    ),
];

/// The pages whose data their script fetches: (page, template, title).
pub(crate) const SHELLS: [(&str, &str, &str); 5] = [
    ("readings", "readings.html", "Live readings"),
    ("standards", "standards.html", "Standards"),
    ("jobs", "jobs.html", "Jobs"),
    ("logbook", "logbook.html", "Logbook"),
    ("certificates", "certificates.html", "Certificates"),
];

/// The page templates.
#[derive(Debug)]
pub(crate) struct Pages(Tera);

impl Pages {
    pub(crate) fn new() -> Result<Self, tera::Error> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES)?;
        tera.autoescape_on(vec![".html"]);
        Ok(Self(tera))
    }

    fn render(&self, name: &str, vars: &Vars) -> String {
        self.0.render(name, vars).unwrap_or_else(|e| {
            tracing::error!("page {name}: {}", mqttcal_core::error_chain(&e));
            #[cfg(test)]
            eprintln!("page {name}: {}", mqttcal_core::error_chain(&e));
            format!("<!doctype html><title>error</title><p>The page {name} could not be made; webd's log says why.")
        })
    }

    fn with_session(session: &Session, page: &str, title: &str) -> Vars {
        let mut v = Vars::new();
        v.insert("user", &session.user);
        v.insert("role", &session.role);
        v.insert("csrf", &session.csrf);
        v.insert("page", page);
        v.insert("title", title);
        v
    }

    pub(crate) fn login(&self, token: &str, problem: Option<&str>) -> String {
        let mut v = Vars::new();
        v.insert("token", token);
        v.insert("problem", &problem);
        v.insert("title", "Log in");
        self.render("login.html", &v)
    }

    pub(crate) fn nodes(&self, session: &Session, nodes: &Value, problem: Option<&str>) -> String {
        let mut v = Self::with_session(session, "nodes", "Nodes");
        let mut nodes = nodes.clone();
        for n in nodes.as_array_mut().into_iter().flatten() {
            let href = percent_encoded(n.get("name").and_then(Value::as_str).unwrap_or(""));
            if let Some(n) = n.as_object_mut() {
                n.insert("href".into(), href.into());
            }
        }
        v.insert("nodes", &nodes);
        v.insert("problem", &problem);
        self.render("nodes.html", &v)
    }

    pub(crate) fn node(&self, session: &Session, name: &str) -> String {
        let mut v = Self::with_session(session, "node", name);
        v.insert("node", name);
        self.render("node.html", &v)
    }

    /// A page of [`SHELLS`].
    pub(crate) fn shell(&self, session: &Session, which: usize) -> String {
        let (page, template, title) = SHELLS[which];
        let v = Self::with_session(session, page, title);
        self.render(template, &v)
    }

    /// A page about one thing (a standard, a job) named `item`.
    pub(crate) fn about(&self, session: &Session, page: &str, item: &str) -> String {
        let mut v = Self::with_session(session, page, item);
        v.insert("item", item);
        self.render(&format!("{page}.html"), &v)
    }
}

/// `text` with everything but ASCII letters, digits and `-._~` percent-encoded (a path
/// segment).
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes_what_it_shows() {
        let pages = Pages::new().unwrap();
        let sessions = crate::sessions::Sessions::default();
        let s = sessions
            .get(&sessions.open("<b>&\"", "viewer", "stamp"))
            .unwrap();
        let nodes = serde_json::json!([{"name": "<script>", "status": "up", "since": 0.0,
            "last_seen": 0.0, "capabilities": ["ping"]}]);
        let page = pages.nodes(&s, &nodes, Some("<i>"));
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;b&gt;&amp;&quot;"), "{page}");
        assert!(page.contains("&lt;i&gt;"), "{page}");
        assert!(page.contains("href=\"/nodes/%3Cscript%3E\""), "{page}");
        let mut all = vec![pages.node(&s, "<x>"), pages.login("t", None)];
        all.extend((0..SHELLS.len()).map(|i| pages.shell(&s, i)));
        all.push(pages.about(&s, "standard", "<x>"));
        all.push(pages.about(&s, "job", "<x>"));
        for p in all {
            assert!(p.starts_with("<!doctype html>"), "{p}");
            assert!(!p.contains("<x>"), "{p}");
        }
    }
}
