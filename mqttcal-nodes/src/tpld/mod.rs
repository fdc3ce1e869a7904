//! tpld: calibration certificates rendered from templates a laboratory can own.
//!
//! Available with the `tpld` feature. With the `pdf` feature, tpld also typesets
//! certificates and reports as PDF (Typst compiled in).
//!
//! tpld gathers a certificate's data once from datad (the job, its latest result, the item
//! and equipment of the register, the conditions of the measurement) and renders every
//! format from it (`mqttcal-certificates`): the Digital Calibration Certificate (DCC 3.1.2
//! XML) and the printable HTML page, from the built-in templates or a laboratory's own
//! template folder.
//!
//! | capability | what |
//! |---|---|
//! | `templates` | the templates and where each comes from |
//! | `certificate` | a job's certificate as a draft: its data and its documents |
//! | `review`, `authorise` | the review before issue, each by a different person |
//! | `issue` | the final certificate: a new number, its documents stored through datad |
//! | `amend` | a new certificate replacing an issued one, citing it and why |
//! | `batch` | many authorised certificates issued in one call, with progress |
//! | `logbook` | the logbook for a time range as a printable page, with its verification |
//!
//! ```no_run
//! # async fn demo(transport: &dyn mqttcal_core::transport::Transport) -> Result<(), Box<dyn std::error::Error>> {
//! use mqttcal_nodes::tpld::{node, TpldConfig};
//! let config = TpldConfig::default(); // set `laboratory` to your laboratory's details
//! let tpld = node("tpld", config)?.build().start(transport).await?;
//! # tpld.stop().await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use mqttcal_certificates::{dcc, CertificateData, Party, Person, TemplateError, Templates};
use mqttcal_core::{node, Context, NodeBuilder, NodeError};
use mqttcal_messages::{Base64, CertificateDocument};
use mqttcal_metrology::Rounding;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod gather;
mod logbook;
mod report;
mod typeset;
mod workflow;

pub use logbook::{LogbookDocument, LogbookRequest};
pub use report::{ReportDocument, ReportKind, ReportRequest};
pub use workflow::{AmendRequest, BatchItem, BatchRequest, IssueRequest, Review, Step};

/// The topic batch progress goes out on (QoS 0, simple messages), as cald's.
pub use mqttcal_core::topics::PROGRESS;

/// The `tpld` section of the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TpldConfig {
    /// The datad node that keeps the records.
    #[serde(default = "default_datad")]
    pub datad: String,
    /// The logd node that keeps the logbook.
    #[serde(default = "default_logd")]
    pub logd: String,
    /// The laboratory as its certificates name it (`name`, `email`, `phone`, `address`
    /// with `street`, `street_no`, `post_code`, `city`, `country`, and `code`: an
    /// accreditation number).
    #[serde(default = "default_laboratory")]
    pub laboratory: Party,
    /// Where calibrations are performed, ISO 3166-1 alpha-2.
    #[serde(default = "default_country")]
    pub country: String,
    /// The certificates' language, ISO 639-1.
    #[serde(default = "default_language")]
    pub language: String,
    /// The statement of metrological traceability printed on every certificate.
    #[serde(default = "default_traceability")]
    pub traceability: String,
    /// The method named when a job names no procedure.
    #[serde(default = "default_method")]
    pub method: String,
    /// The coverage probability the results' coverage factors give, as printed.
    #[serde(default = "default_probability")]
    pub coverage_probability: String,
    /// How U is rounded to two significant digits: `nearest` or `up`.
    #[serde(default)]
    pub rounding: Rounding,
    /// A folder of templates that replace the built-in ones file by file.
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// Certificate numbers: this series (`{year}` is the year of issue) and a four-digit
    /// number, e.g. `CAL-2026-0001`; datad never gives a number twice.
    #[serde(default = "default_series")]
    pub number_series: String,
    /// Signing of issued DCCs (an enveloped XML signature made by xmlsec1); none if unset.
    #[serde(default)]
    pub sign: Option<SignConfig>,
    /// Senders trusted to name `by` for the person they forward a step for, in the addressed
    /// layout (default `[ctrld]`, which forwards a step only in its caller's own name).
    #[serde(default = "default_relays")]
    pub relays: Vec<String>,
}

fn default_relays() -> Vec<String> {
    vec!["ctrld".to_owned()]
}

/// How tpld signs the DCC of an issued certificate: the key and certificate stay in files
/// the laboratory keeps (outside the database); `xmlsec1` reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SignConfig {
    /// The private key (PEM).
    pub key: PathBuf,
    /// Its X.509 certificate (PEM), put in the signature for verifiers.
    pub certificate: PathBuf,
    /// The `xmlsec1` program (default: found on the `PATH`).
    #[serde(default = "default_xmlsec1")]
    pub xmlsec1: PathBuf,
}

fn default_xmlsec1() -> PathBuf {
    "xmlsec1".into()
}

fn default_series() -> String {
    "CAL-{year}".into()
}

fn default_datad() -> String {
    "datad".into()
}

fn default_logd() -> String {
    "logd".into()
}

fn default_country() -> String {
    "IT".into()
}

fn default_language() -> String {
    "en".into()
}

fn default_method() -> String {
    "Calibration by comparison with a reference standard".into()
}

fn default_probability() -> String {
    "0.9545".into()
}

fn default_traceability() -> String {
    "The results are traceable to the International System of Units (SI) through the laboratory's reference standards, calibrated by a national metrology institute.".into()
}

fn default_laboratory() -> Party {
    mqttcal_certificates::example().laboratory
}

impl Default for TpldConfig {
    fn default() -> Self {
        Self {
            datad: default_datad(),
            logd: default_logd(),
            laboratory: default_laboratory(),
            country: default_country(),
            language: default_language(),
            traceability: default_traceability(),
            method: default_method(),
            coverage_probability: default_probability(),
            rounding: Rounding::default(),
            templates: None,
            number_series: default_series(),
            sign: None,
            relays: default_relays(),
        }
    }
}

/// tpld's state: its configuration and its templates, loaded (and checked) at start.
#[derive(Debug)]
struct Tpld {
    config: TpldConfig,
    templates: Arc<Templates>,
    /// Where documents are rendered, a few at a time.
    typesetter: typeset::Typesetter,
    /// Jobs with a review step under way.
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Which job's certificate, and what the caller adds to what datad knows.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    /// The job.
    pub job: String,
    /// The customer's details, when the job does not keep them (`body.customer`).
    #[serde(default)]
    pub customer: Option<Party>,
    /// Who calibrated, reviewed and authorised (default: who recorded the result).
    #[serde(default)]
    pub persons: Vec<Person>,
}

/// A certificate as rendered: its data and its documents.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Rendered {
    /// The certificate number (`DRAFT-<job>` for a draft).
    pub number: String,
    /// The data every document was rendered from.
    pub data: CertificateData,
    /// The documents, base64: `dcc` (application/xml), `html` (text/html), `pdf`
    /// (application/pdf, when tpld is built with the `pdf` feature) and, once issued with a
    /// signing key, `dcc-signed`.
    pub documents: Vec<CertificateDocument>,
}

/// One template and where it comes from.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateInfo {
    /// Its name (`certificate.html`).
    pub name: String,
    /// `built-in`, or the file that replaces the built-in one.
    pub source: String,
}

#[node]
impl Tpld {
    /// The templates and where each comes from (built in, or the laboratory's folder)
    #[capability]
    async fn templates(&self) -> Result<Vec<TemplateInfo>, NodeError> {
        Ok(self
            .templates
            .names()
            .into_iter()
            .map(|name| TemplateInfo {
                source: self
                    .templates
                    .source(&name)
                    .map_or_else(|| "built-in".to_owned(), |p| p.display().to_string()),
                name,
            })
            .collect())
    }

    /// A job's certificate as a draft (DCC, HTML and, built with `pdf`, PDF) from what datad keeps; a customer or calibrator given is kept with the job for the review
    #[capability]
    async fn certificate(
        &self,
        p: CertificateRequest,
        ctx: &Context,
    ) -> Result<Rendered, NodeError> {
        let extra = gather::Extra {
            customer: p.customer,
            persons: p.persons,
        };
        let keep = workflow::Keep::of(&extra);
        let data = gather::gather(ctx, &self.config, &p.job, extra).await?;
        let rendered = render(self, data).await?;
        if let Some(keep) = keep {
            let _turn = self.turn(&p.job)?;
            workflow::keep(ctx, self, &p.job, keep).await?;
        }
        Ok(rendered)
    }

    /// Marks a job's certificate reviewed (by somebody who did not calibrate)
    #[capability]
    async fn review(&self, p: Step, ctx: &Context) -> Result<Review, NodeError> {
        let _turn = self.turn(&p.job)?;
        workflow::review(ctx, self, p).await
    }

    /// Marks a reviewed certificate authorised (by a second person; in production, the sender's login)
    #[capability]
    async fn authorise(&self, p: Step, ctx: &Context) -> Result<Review, NodeError> {
        let _turn = self.turn(&p.job)?;
        workflow::authorise(ctx, self, p).await
    }

    /// Issues an authorised certificate: takes its number, stores its documents through datad, logs it
    #[capability]
    async fn issue(&self, p: IssueRequest, ctx: &Context) -> Result<Rendered, NodeError> {
        let _turn = self.turn(&p.job)?;
        workflow::issue(ctx, self, p).await
    }

    /// Issues many authorised certificates in one call, with progress on `progress`; one that fails does not stop the rest
    #[capability]
    async fn batch(&self, p: BatchRequest, ctx: &Context) -> Result<Vec<BatchItem>, NodeError> {
        workflow::batch(ctx, self, p).await
    }

    /// The logbook for a time range as a printable page, with the chain's verification
    #[capability]
    async fn logbook(
        &self,
        p: LogbookRequest,
        ctx: &Context,
    ) -> Result<LogbookDocument, NodeError> {
        logbook::logbook(ctx, self, p).await
    }

    /// A periodic report as a printable page (and PDF): `calibrations` issued in a month, or `standard`, a standard's calibration history with its drift line and plot
    #[capability]
    async fn report(&self, p: ReportRequest, ctx: &Context) -> Result<ReportDocument, NodeError> {
        report::report(ctx, self, p).await
    }

    /// Replaces an issued certificate: a new number citing the original and the reason; the original stays as it was
    #[capability]
    async fn amend(&self, p: AmendRequest, ctx: &Context) -> Result<Rendered, NodeError> {
        let _turn = self.turn(&p.number)?;
        workflow::amend(ctx, self, p).await
    }
}

/// A job's turn at the review: one step at a time per job.
struct Turn<'a> {
    busy: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    job: String,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.job);
    }
}

impl Tpld {
    fn turn(&self, job: &str) -> Result<Turn<'_>, NodeError> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if !busy.insert(job.to_owned()) {
            return Err(NodeError::busy(format!(
                "a step of job `{job}`'s certificate is under way; try again"
            )));
        }
        Ok(Turn {
            busy: &self.busy,
            job: job.to_owned(),
        })
    }
}

/// Every document of `data`, all or none, typeset off the async threads.
async fn render(tpld: &Tpld, data: CertificateData) -> Result<Rendered, NodeError> {
    let templates = Arc::clone(&tpld.templates);
    let what = format!("certificate {}", data.number);
    tpld.typesetter
        .run(&what, move || render_now(&templates, data))
        .await
}

/// Every document of `data`, all or none.
fn render_now(templates: &Templates, data: CertificateData) -> Result<Rendered, NodeError> {
    let bad_data = |e: mqttcal_certificates::CertificateError| {
        NodeError::invalid_params(format!("the certificate's data: {e}"))
    };
    let xml = dcc(&data).map_err(bad_data)?;
    let template_error = |e| match e {
        TemplateError::Data(e) => bad_data(e),
        other => NodeError::internal(other.to_string()),
    };
    let html = templates.certificate_html(&data).map_err(template_error)?;
    #[cfg(feature = "pdf")]
    let pdf = templates.certificate_pdf(&data).map_err(template_error)?;
    let doc = |kind: &str, media_type: &str, bytes: Vec<u8>| CertificateDocument {
        kind: kind.into(),
        media_type: media_type.into(),
        content: Base64(bytes),
    };
    #[allow(unused_mut)] // without the `pdf` feature
    let mut documents = vec![
        doc("dcc", "application/xml", xml.into_bytes()),
        doc("html", "text/html", html.into_bytes()),
    ];
    #[cfg(feature = "pdf")]
    documents.push(doc("pdf", "application/pdf", pdf));
    Ok(Rendered {
        number: data.number.clone(),
        documents,
        data,
    })
}

/// A tpld node: the templates are loaded (a laboratory's folder over the built-in ones)
/// and checked now, so a broken template stops the start with its file and line.
pub fn node(name: &str, config: TpldConfig) -> Result<NodeBuilder, TemplateError> {
    let templates = match &config.templates {
        Some(dir) => Templates::with_dir(dir)?,
        None => Templates::builtin(),
    };
    match &config.sign {
        Some(s) => {
            tracing::info!(node = name, key = %s.key.display(), "issued DCCs are signed with xmlsec1")
        }
        None => tracing::info!(
            node = name,
            "issued DCCs are not signed (no `sign` in the tpld section: key, certificate)"
        ),
    }
    if config.laboratory == default_laboratory() {
        tracing::warn!(
            node = name,
            "no `laboratory` in the tpld section: certificates name the example laboratory (\"{}\")",
            config.laboratory.name
        );
    }
    if cfg!(feature = "pdf") {
        tracing::info!(
            node = name,
            "certificates are rendered as DCC, HTML and PDF"
        );
    } else {
        tracing::info!(
            node = name,
            "certificates are rendered as DCC and HTML; PDF needs a build with `--features pdf`"
        );
    }
    Ok(NodeBuilder::new(name).register(Tpld {
        config,
        templates: Arc::new(templates),
        typesetter: typeset::Typesetter::new(),
        busy: Default::default(),
    }))
}
