//! Document templates (Tera): the built-in ones, overridden file by file by a laboratory's
//! own template folder. Values reach a template as data, and HTML templates escape every
//! one of them; a template that does not parse is an error naming its file and line.

use std::path::{Path, PathBuf};

use crate::check::CertificateError;
use crate::model::{CertificateData, Status};

/// The built-in templates: name and text.
const BUILTIN: &[(&str, &str)] = &[
    (
        "calibrations.html",
        include_str!("../templates/calibrations.html"),
    ),
    (
        "certificate.html",
        include_str!("../templates/certificate.html"),
    ),
    ("logbook.html", include_str!("../templates/logbook.html")),
    ("report.html", include_str!("../templates/report.html")),
    ("standard.html", include_str!("../templates/standard.html")),
];

/// The built-in Typst templates (PDF): name and text.
#[cfg(feature = "pdf")]
const BUILTIN_TYPST: &[(&str, &str)] = &[
    (
        "calibrations.typ",
        include_str!("../templates/calibrations.typ"),
    ),
    (
        "certificate.typ",
        include_str!("../templates/certificate.typ"),
    ),
    ("standard.typ", include_str!("../templates/standard.typ")),
];
#[cfg(not(feature = "pdf"))]
const BUILTIN_TYPST: &[(&str, &str)] = &[];

/// A template set could not be loaded, or a document not rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template file could not be read.
    #[error("{}: {problem}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        problem: String,
    },
    /// A template does not parse.
    #[error("{}{}: {problem}", file.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Syntax {
        /// The file (a built-in template's name for a built-in one).
        file: PathBuf,
        /// The line of the error, when the parser says.
        line: Option<usize>,
        /// What the parser says.
        problem: String,
    },
    /// Rendering failed (e.g. a template names a field the data does not have).
    #[error("rendering {template}: {problem}")]
    Render {
        /// The template.
        template: String,
        /// Why.
        problem: String,
    },
    /// The certificate's data is not valid.
    #[error(transparent)]
    Data(#[from] CertificateError),
}

/// A set of templates: the built-in ones, with a laboratory's own files in their place.
///
/// ```
/// use mqttcal_certificates::{example, Templates};
/// let templates = Templates::builtin();
/// let html = templates.certificate_html(&example()).unwrap();
/// assert!(html.contains("10.00001234 V"));
/// assert!(templates.names().contains(&"certificate.html".to_owned()));
/// ```
#[derive(Debug)]
pub struct Templates {
    tera: tera::Tera,
    /// The Typst templates (PDF), parsed.
    #[cfg(feature = "pdf")]
    typst: Vec<crate::pdf::TypstSource>,
    /// Where each template came from: `None` for a built-in one.
    sources: Vec<(String, Option<PathBuf>)>,
}

impl Templates {
    /// The built-in templates.
    pub fn builtin() -> Self {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(BUILTIN.iter().copied())
            .expect("the built-in templates parse");
        let mut templates = Self {
            tera,
            #[cfg(feature = "pdf")]
            typst: BUILTIN_TYPST
                .iter()
                .map(|(name, text)| {
                    crate::pdf::TypstSource::parse(name, (*text).to_owned(), Path::new(name))
                        .expect("the built-in Typst templates parse")
                })
                .collect(),
            sources: BUILTIN
                .iter()
                .chain(BUILTIN_TYPST)
                .map(|(n, _)| ((*n).to_owned(), None))
                .collect(),
        };
        templates.sources.sort();
        templates
    }

    /// The built-in templates, each replaced by the file of the same name in `dir`, plus
    /// the other files there: `*.html`, `*.xml` and `*.txt` are Tera templates, `*.typ`
    /// Typst ones (PDF; read only when built with the `pdf` feature, skipped otherwise).
    /// Nothing is loaded unless every file parses: the error names the first that does
    /// not, and its line.
    pub fn with_dir(dir: &Path) -> Result<Self, TemplateError> {
        let read_dir = |e: std::io::Error| TemplateError::Read {
            file: dir.to_owned(),
            problem: e.to_string(),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(e, "html" | "xml" | "txt") || (cfg!(feature = "pdf") && e == "typ")
                    })
            })
            .collect();
        files.sort();
        let mut templates = Self::builtin();
        for file in files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| TemplateError::Read {
                    file: file.clone(),
                    problem: "the file name is not UTF-8".into(),
                })?
                .to_owned();
            let text = std::fs::read_to_string(&file).map_err(|e| TemplateError::Read {
                file: file.clone(),
                problem: e.to_string(),
            })?;
            #[cfg(feature = "pdf")]
            if name.ends_with(".typ") {
                let parsed = crate::pdf::TypstSource::parse(&name, text, &file)?;
                templates.typst.retain(|t| t.name() != name);
                templates.typst.push(parsed);
                templates.sources.retain(|(n, _)| *n != name);
                templates.sources.push((name, Some(file)));
                continue;
            }
            templates
                .tera
                .add_raw_template(&name, &text)
                .map_err(|e| syntax(&file, &e))?;
            templates.sources.retain(|(n, _)| *n != name);
            templates.sources.push((name, Some(file)));
        }
        templates.sources.sort();
        Ok(templates)
    }

    /// The templates' names.
    pub fn names(&self) -> Vec<String> {
        self.sources.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Where the template `name` comes from: its file, or `None` if it is built in.
    pub fn source(&self, name: &str) -> Option<&Path> {
        self.sources
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, p)| p.as_deref())
    }

    /// The certificate as a printable HTML page (`certificate.html`), after
    /// [`CertificateData::check`]. A certificate that is not issued says DRAFT on every
    /// printed page.
    pub fn certificate_html(&self, data: &CertificateData) -> Result<String, TemplateError> {
        data.check()?;
        self.render("certificate.html", data)
    }

    /// Renders template `name` with the fields of `context` (an object) as its variables:
    /// for documents other than certificates (`logbook.html`: `laboratory`, `from`, `to`,
    /// `entries`, `verification`, `generated`, `software`).
    pub fn render_with(
        &self,
        name: &str,
        context: &impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        let render = |problem: String| TemplateError::Render {
            template: name.to_owned(),
            problem,
        };
        let ctx = tera::Context::from_serialize(context).map_err(|e| render(chain(&e)))?;
        self.tera.render(name, &ctx).map_err(|e| render(chain(&e)))
    }

    /// The certificate as PDF (`certificate.typ`, typeset by Typst), after
    /// [`CertificateData::check`]. The same data gives the same bytes. A certificate that
    /// is not issued says DRAFT on every page. Available with the `pdf` feature.
    ///
    /// ```
    /// use mqttcal_certificates::{example, Templates};
    /// let pdf = Templates::builtin().certificate_pdf(&example()).unwrap();
    /// assert!(pdf.starts_with(b"%PDF-"));
    /// ```
    #[cfg(feature = "pdf")]
    pub fn certificate_pdf(&self, data: &CertificateData) -> Result<Vec<u8>, TemplateError> {
        data.check()?;
        Self::printable(data)?;
        let date = data.issued.as_deref().unwrap_or(&data.end);
        self.render_pdf_with(
            "certificate.typ",
            &serde_json::json!({ "c": data, "draft": data.status != Status::Issued }),
            &data.number,
            date,
        )
    }

    /// Whether the PDF's fonts can show every character of `data`; the field and the
    /// character that they cannot. A certificate states names as given, so one the PDF
    /// cannot print is refused rather than printed otherwise. Available with the `pdf` feature.
    #[cfg(feature = "pdf")]
    pub fn printable(data: &CertificateData) -> Result<(), crate::CertificateError> {
        let value = serde_json::to_value(data).map_err(|e| crate::CertificateError {
            field: String::new(),
            problem: e.to_string(),
        })?;
        match crate::pdf::unprintable("", &value) {
            None => Ok(()),
            Some((field, c)) => Err(crate::CertificateError {
                field,
                problem: format!(
                    "the PDF's fonts cannot show `{c}` (U+{:04X}); write it in Latin, Greek or Cyrillic letters",
                    c as u32
                ),
            }),
        }
    }

    /// Renders the Typst template `name` to PDF with `data` as its `/data.json`
    /// (`json("/data.json")` in the template); a character no embedded font can show
    /// becomes `?` (reports list what is stored, whatever it holds). `ident` names the document stably; `date`
    /// (`YYYY-MM-DD`) dates the PDF and is what `datetime.today()` gives the template.
    /// Available with the `pdf` feature.
    #[cfg(feature = "pdf")]
    pub fn render_pdf_with(
        &self,
        name: &str,
        data: &impl serde::Serialize,
        ident: &str,
        date: &str,
    ) -> Result<Vec<u8>, TemplateError> {
        crate::pdf::render(&self.typst, name, data, ident, date)
    }

    /// Renders template `name` with the certificate as `c` and `draft` (not issued).
    pub fn render(&self, name: &str, data: &CertificateData) -> Result<String, TemplateError> {
        let mut ctx = tera::Context::new();
        ctx.insert("c", data);
        ctx.insert("draft", &(data.status != Status::Issued));
        self.tera
            .render(name, &ctx)
            .map_err(|e| TemplateError::Render {
                template: name.to_owned(),
                problem: chain(&e),
            })
    }
}

/// The error chain of a Tera error, on one line.
fn chain(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A parse error of `file`, with the line the parser names (`--> 3:7`).
fn syntax(file: &Path, e: &tera::Error) -> TemplateError {
    let text = chain(e);
    let line = text.split("--> ").nth(1).and_then(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    TemplateError::Syntax {
        file: file.to_owned(),
        line,
        problem: text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}
