//! Reading PDF documents back as text, as a reader's tools would (pdftotext).

use std::process::Command;

/// The text of `pdf`, page by page, as `pdftotext -layout` reads it.
pub fn pdf_pages(pdf: &[u8]) -> Vec<String> {
    let file = tempfile::Builder::new()
        .suffix(".pdf")
        .tempfile()
        .expect("a temporary file");
    std::fs::write(file.path(), pdf).expect("the PDF written");
    let out = Command::new(crate::pdftotext())
        .arg("-layout")
        .arg(file.path())
        .arg("-")
        .output()
        .expect("pdftotext runs");
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("pdftotext writes UTF-8");
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

/// The text of `pdf`, all pages, white space squeezed to single spaces.
pub fn pdf_text(pdf: &[u8]) -> String {
    pdf_pages(pdf)
        .join("\n")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
