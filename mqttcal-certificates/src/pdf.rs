//! PDF documents, typeset by Typst (the `typst` crates, compiled in; no browser, LaTeX or
//! network at run time). The fonts are the ones shipped with Typst (Libertinus Serif,
//! New Computer Modern, DejaVu Sans Mono), embedded in the program and subset into each
//! PDF, so rendering reads nothing from the machine.
//!
//! A template reaches its data as a file: `json("/data.json")`. Values are placed as text,
//! never read as markup. A template sees only the other `.typ` templates of its set and
//! that file: no file system, no packages.
//!
//! The PDF is written as PDF/A-2b (for archiving; Typst's writer refuses what would break
//! it), dated with the document's date, and named stably, so the same data gives the same
//! bytes and the same content hash.

use std::sync::OnceLock;

use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::layout::PagedDocument;
use typst::syntax::{FileId, Source, VirtualPath};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

use crate::templates::TemplateError;

/// How old (in renderings) a cached layout result may grow before it is dropped: memory
/// stays bounded over a long run while a batch still reuses fonts and shaping.
const CACHE_AGE: usize = 10;

/// What every rendering shares: the standard library and the embedded fonts, loaded once.
struct Shared {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts()
            .flat_map(|data| Font::iter(Bytes::new(data)))
            .collect();
        Shared {
            library: LazyHash::new(Library::default()),
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
        }
    })
}

/// A Typst template, parsed.
#[derive(Debug, Clone)]
pub(crate) struct TypstSource(Source);

impl TypstSource {
    /// Parses `text` as the template `name`; a syntax error names `file` and its line.
    pub(crate) fn parse(
        name: &str,
        text: String,
        file: &std::path::Path,
    ) -> Result<Self, TemplateError> {
        let source = Source::new(FileId::new(None, VirtualPath::new(name)), text);
        if let Some(error) = source.root().errors().into_iter().next() {
            return Err(TemplateError::Syntax {
                file: file.to_owned(),
                line: line_of(&source, error.span),
                problem: error.message.to_string(),
            });
        }
        Ok(Self(source))
    }

    pub(crate) fn name(&self) -> String {
        self.0.id().vpath().as_rootless_path().display().to_string()
    }
}

/// Whether one of the embedded fonts has a glyph for `c`.
fn printable(c: char) -> bool {
    shared()
        .fonts
        .iter()
        .any(|f| f.info().coverage.contains(c as u32))
}

/// The first string of `value` (a JSON path, and the character) that holds a character
/// no embedded font can show: a PDF/A document cannot print it.
pub(crate) fn unprintable(path: &str, value: &serde_json::Value) -> Option<(String, char)> {
    use serde_json::Value;
    match value {
        Value::String(s) => s
            .chars()
            .find(|c| !printable(*c))
            .map(|c| (path.to_owned(), c)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| unprintable(&format!("{path}[{i}]"), v)),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            unprintable(&p, v)
        }),
        _ => None,
    }
}

/// `value` with each character no embedded font can show replaced by `?`: for reports,
/// which list what is stored and must render whatever it holds.
fn printable_only(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if !s.chars().all(printable) => {
            *s = s
                .chars()
                .map(|c| if printable(c) { c } else { '?' })
                .collect();
        }
        Value::Array(items) => items.iter_mut().for_each(printable_only),
        Value::Object(map) => map.values_mut().for_each(printable_only),
        _ => {}
    }
}

/// The 1-based line of `span` in `source`.
fn line_of(source: &Source, span: typst::syntax::Span) -> Option<usize> {
    let range = source.range(span)?;
    source.lines().byte_to_line(range.start).map(|l| l + 1)
}

/// One rendering: the template set, the main template and its data.
struct Job<'a> {
    sources: &'a [TypstSource],
    main: FileId,
    data: Bytes,
    date: Datetime,
}

impl World for Job<'_> {
    fn library(&self) -> &LazyHash<Library> {
        &shared().library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &shared().book
    }

    fn main(&self) -> FileId {
        self.main
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        self.sources
            .iter()
            .find(|s| s.0.id() == id)
            .map(|s| s.0.clone())
            .ok_or_else(|| not_found(id))
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id.package().is_none() && id.vpath().as_rootless_path() == std::path::Path::new(DATA) {
            return Ok(self.data.clone());
        }
        match self.source(id) {
            Ok(s) => Ok(Bytes::from_string(s.text().to_owned())),
            Err(e) => Err(e),
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        shared().fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<i64>) -> Option<Datetime> {
        Some(self.date)
    }
}

/// The data file's name, as a template reads it: `json("/data.json")`.
const DATA: &str = "data.json";

fn not_found(id: FileId) -> FileError {
    FileError::NotFound(id.vpath().as_rootless_path().to_owned())
}

/// Renders template `main` of `sources` with `data` (serialised as `/data.json`) to PDF.
/// `ident` names the document stably (the same data gives the same bytes); `date`
/// (`YYYY-MM-DD`) dates the PDF and is what the template's `datetime.today()` gives.
pub(crate) fn render(
    sources: &[TypstSource],
    main: &str,
    data: &impl serde::Serialize,
    ident: &str,
    date: &str,
) -> Result<Vec<u8>, TemplateError> {
    let fail = |problem: String| TemplateError::Render {
        template: main.to_owned(),
        problem,
    };
    let date = parse_date(date)
        .ok_or_else(|| fail(format!("the document's date `{date}` is not YYYY-MM-DD")))?;
    let source = sources
        .iter()
        .find(|s| s.name() == main)
        .ok_or_else(|| fail("no such template".into()))?;
    let mut value = serde_json::to_value(data).map_err(|e| fail(e.to_string()))?;
    printable_only(&mut value);
    let json = serde_json::to_vec(&value).map_err(|e| fail(e.to_string()))?;
    let job = Job {
        sources,
        main: source.0.id(),
        data: Bytes::new(json),
        date,
    };
    let compiled = typst::compile::<PagedDocument>(&job).output;
    let result = compiled.and_then(|document| {
        let options = typst_pdf::PdfOptions {
            ident: Smart::Custom(ident),
            timestamp: Some(typst_pdf::Timestamp::new_utc(date)),
            standards: typst_pdf::PdfStandards::new(&[typst_pdf::PdfStandard::A_2b])
                .expect("PDF/A-2b is a standard Typst writes"),
            ..typst_pdf::PdfOptions::default()
        };
        typst_pdf::pdf(&document, &options)
    });
    comemo::evict(CACHE_AGE);
    result.map_err(|errors| fail(describe(&job, &errors)))
}

/// `YYYY-MM-DD` (anything after the tenth character ignored) as a date.
fn parse_date(text: &str) -> Option<Datetime> {
    let mut parts = text.get(..10)?.split('-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    Datetime::from_ymd(year, month, day)
}

/// The first error of a rendering, with the template and line it comes from.
fn describe(job: &Job<'_>, errors: &[SourceDiagnostic]) -> String {
    let Some(error) = errors.first() else {
        return "the template failed without saying why".into();
    };
    let mut text = error.message.to_string();
    if let Some(source) = error.span.id().and_then(|id| job.source(id).ok()) {
        let name = source.id().vpath().as_rootless_path().display().to_string();
        match line_of(&source, error.span) {
            Some(line) => text = format!("{name}, line {line}: {text}"),
            None => text = format!("{name}: {text}"),
        }
    }
    for hint in &error.hints {
        text.push_str(&format!(" (hint: {hint})"));
    }
    text
}
