//! A small XML writer: elements, attributes and text, each escaped by XML's rules, so no
//! user string ever becomes markup.

use std::fmt::Write as _;

/// Writes an XML document, indented by two spaces per level.
#[derive(Debug, Default)]
pub(crate) struct XmlWriter {
    out: String,
    open: Vec<&'static str>,
}

impl XmlWriter {
    /// A document starting with the XML declaration.
    pub(crate) fn new() -> Self {
        Self {
            out: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".into(),
            open: Vec::new(),
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.open.len() {
            self.out.push_str("  ");
        }
    }

    fn start_tag(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            let _ = write!(self.out, " {key}=\"");
            escape_into(&mut self.out, value, true);
            self.out.push('"');
        }
        self.out.push('>');
    }

    /// Opens an element that holds other elements.
    pub(crate) fn open(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push('\n');
        self.open.push(name);
    }

    /// Closes the innermost open element.
    pub(crate) fn close(&mut self) {
        let name = self.open.pop().expect("an element is open");
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    /// An element holding `text` (escaped).
    pub(crate) fn text(&mut self, name: &'static str, attrs: &[(&str, &str)], text: &str) {
        self.start_tag(name, attrs);
        escape_into(&mut self.out, text, false);
        let _ = writeln!(self.out, "</{name}>");
    }

    /// The document; every element must be closed.
    pub(crate) fn finish(self) -> String {
        assert!(self.open.is_empty(), "unclosed elements: {:?}", self.open);
        self.out
    }
}

/// Appends `text` escaped for element content (or, with `attribute`, for a value in double
/// quotes). Characters XML 1.0 cannot carry at all (most control characters) become U+FFFD.
fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            // Kept as references, so a parser does not normalise them away.
            '\t' | '\n' | '\r' if attribute => {
                let _ = write!(out, "&#{};", c as u32);
            }
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// Whether XML 1.0 allows `c` in a document.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut w = XmlWriter::new();
        w.open("a", &[("k", "x\"<&>\ty")]);
        w.text("b", &[], "<&\"#$[\u{1}>\r");
        w.close();
        let doc = w.finish();
        assert!(
            doc.contains(r#"<a k="x&quot;&lt;&amp;&gt;&#9;y">"#),
            "{doc}"
        );
        assert!(
            doc.contains("<b>&lt;&amp;\"#$[\u{FFFD}&gt;&#13;</b>"),
            "{doc}"
        );
    }
}
