//! Review before issue (ISO/IEC 17025 §7.8): draft → reviewed → authorised → issued. The
//! state is kept with the job (`body.certificate` in datad), the reviewer differs from who
//! calibrated, the authorising person from both (and is the sender's login in the
//! addressed layout), and only issuing takes a number, stores the documents through
//! datad (`save_certificate`) and logs it.

use mqttcal_certificates::{CertificateData, Person, Status, XmlSigner};
use mqttcal_core::topics::Layout;
use mqttcal_core::{Context, NodeError};
use mqttcal_messages::{JobRecord, LogEntry, References};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::gather::{ask, date, gather, Extra, StoredJob};
use super::{render, Rendered, Tpld};

/// Where a job's certificate stands, as kept in the job's `body.certificate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Review {
    /// `draft`, `reviewed`, `authorised` or `issued`.
    pub status: String,
    /// Who reviewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    /// Who authorised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorised_by: Option<String>,
    /// The number it was issued with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// A step of the review: which job, and who takes it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The job.
    pub job: String,
    /// Who reviews or authorises (in the addressed layout: the sender's login).
    pub by: String,
}

/// Which job's certificate to issue.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The job (authorised).
    pub job: String,
}

/// An amendment: the certificate it replaces, why, and who authorises it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendRequest {
    /// The number of the certificate replaced (issued).
    pub number: String,
    /// Why it is replaced (printed on the new certificate).
    pub reason: String,
    /// Who authorises the amendment (not who calibrated; in production, the sender's login).
    pub by: String,
}

/// Many authorised certificates to issue in one call.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The jobs (1 to 1000), each authorised.
    pub jobs: Vec<String>,
}

/// What became of one job of a batch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchItem {
    /// The job.
    pub job: String,
    /// The number it was issued with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Why it was not issued: the error's code (`refused`, `busy`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it was not issued: the error's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The most jobs one batch takes.
pub(super) const BATCH_MAX: usize = 1000;

fn refused(reason: &str, message: String) -> NodeError {
    NodeError::refused(message).with_details(json!({ "reason": reason }))
}

async fn job(ctx: &Context, tpld: &Tpld, id: &str) -> Result<JobRecord, NodeError> {
    let stored: StoredJob = ask(ctx, &tpld.config.datad, "job", json!({ "id": id })).await?;
    Ok(stored.job)
}

fn review_of(job: &JobRecord) -> Review {
    job.body
        .as_ref()
        .and_then(|b| b.get("certificate"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_else(|| Review {
            status: "draft".into(),
            ..Review::default()
        })
}

async fn save_review(
    ctx: &Context,
    tpld: &Tpld,
    mut job: JobRecord,
    review: &Review,
) -> Result<(), NodeError> {
    let mut body = match job.body.take() {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    body.insert("certificate".into(), json!(review));
    job.body = Some(Value::Object(body));
    let _: Value = ask(ctx, &tpld.config.datad, "save_job", json!(job)).await?;
    Ok(())
}

/// What a draft's caller gave that the review needs from the job: the customer's details
/// (`body.customer`) and who calibrated (`body.operator`).
#[derive(Debug)]
pub(super) struct Keep {
    customer: Option<Value>,
    operator: Option<String>,
}

impl Keep {
    /// What of `extra` the job should keep, if anything.
    pub(super) fn of(extra: &Extra) -> Option<Self> {
        let customer = extra.customer.as_ref().map(|c| json!(c));
        let operator = extra
            .persons
            .iter()
            .find(|p| p.role == "calibrated")
            .map(|p| p.name.trim().to_owned());
        (customer.is_some() || operator.is_some()).then_some(Self { customer, operator })
    }
}

/// Keeps the customer and calibrator a draft was given with job `id`, unless its
/// certificate is past its draft (then the job's record stays as it was reviewed). The
/// calibrator is kept only where the job names none yet (and, in production, only when
/// the sender names themselves).
pub(super) async fn keep(
    ctx: &Context,
    tpld: &Tpld,
    id: &str,
    keep: Keep,
) -> Result<(), NodeError> {
    let mut job = job(ctx, tpld, id).await?;
    let state = review_of(&job);
    if state.status != "draft" {
        return Ok(());
    }
    let mut body = match job.body.take() {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    if let Some(customer) = keep.customer {
        body.insert("customer".into(), customer);
    }
    // Who calibrated is named once, and in production only by themselves: a later draft
    // cannot move the calibration onto somebody else to review their own work.
    if let Some(operator) = keep.operator {
        let unnamed = body.get("operator").is_none_or(Value::is_null);
        let by_themselves = ctx.layout() != Layout::Addressed || ctx.caller() == Some(&operator);
        if unnamed && by_themselves && !operator.is_empty() {
            body.insert("operator".into(), json!(operator));
        }
    }
    job.body = Some(Value::Object(body));
    let _: Value = ask(ctx, &tpld.config.datad, "save_job", json!(job)).await?;
    Ok(())
}

async fn log(ctx: &Context, job: &str, certificate: Option<&str>, text: String) {
    let entry = LogEntry {
        tags: vec!["certificate".into()],
        refs: References {
            job: Some(job.to_owned()),
            certificate: certificate.map(str::to_owned),
            ..References::default()
        },
        ..LogEntry::new("certificate", text)
    };
    if let Err(e) = ctx.send(LogEntry::TOPIC, "*", &entry).await {
        tracing::warn!("tpld: cannot send a logbook entry: {e}");
    }
}

/// Whether every format can be rendered from `data` (all its fields, and in the PDF's
/// fonts when PDF is rendered).
fn complete(data: &CertificateData) -> Result<(), NodeError> {
    let bad = |e: mqttcal_certificates::CertificateError| {
        NodeError::invalid_params(format!("the certificate's data: {e}"))
    };
    data.check().map_err(bad)?;
    #[cfg(feature = "pdf")]
    mqttcal_certificates::Templates::printable(data).map_err(bad)?;
    Ok(())
}

/// Who the data names as having calibrated.
fn calibrators(data: &CertificateData) -> Vec<String> {
    data.persons
        .iter()
        .filter(|p| p.role == "calibrated")
        .map(|p| p.name.clone())
        .collect()
}

/// A person's name as given for a step: trimmed, not empty, no control characters.
fn person(by: &str) -> Result<String, NodeError> {
    let name = by.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(NodeError::invalid_params(
            "by: a person's name (1 to 200 characters, no control characters)",
        ));
    }
    Ok(name.to_owned())
}

/// Whether two names are the same person's: compared without case and with runs of
/// white space as one space (`Ada`, `ada `, `ADA` are one person).
fn same_person(a: &str, b: &str) -> bool {
    let key = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    key(a) == key(b)
}

/// Whether `by` is among `names`, as the same person.
fn among(names: &[String], by: &str) -> bool {
    names.iter().any(|n| same_person(n, by))
}

/// In the addressed layout the one who takes a step is the sender's login.
fn check_sender(ctx: &Context, tpld: &Tpld, by: &str) -> Result<(), NodeError> {
    let relayed = ctx
        .caller()
        .is_some_and(|c| tpld.config.relays.iter().any(|r| r == c));
    if ctx.layout() == Layout::Addressed && ctx.caller() != Some(by) && !relayed {
        return Err(NodeError::forbidden(format!(
            "`{by}` can only be named by the login `{by}` (this request comes from `{}`)",
            ctx.caller().unwrap_or("nobody")
        )));
    }
    Ok(())
}

/// Marks a job's certificate reviewed by `by`, who did not calibrate.
pub(super) async fn review(ctx: &Context, tpld: &Tpld, mut p: Step) -> Result<Review, NodeError> {
    p.by = person(&p.by)?;
    check_sender(ctx, tpld, &p.by)?;
    let job = job(ctx, tpld, &p.job).await?;
    let mut state = review_of(&job);
    if state.status != "draft" && state.status != "reviewed" {
        return Err(refused(
            "wrong_state",
            format!("the certificate of `{}` is {} already", p.job, state.status),
        ));
    }
    // Its data must be complete, as the job keeps it.
    let data = gather(ctx, &tpld.config, &p.job, Extra::default()).await?;
    complete(&data)?;
    if among(&calibrators(&data), &p.by) {
        return Err(refused(
            "same_person",
            format!(
                "`{}` calibrated job `{}`: a certificate is reviewed by somebody else",
                p.by, p.job
            ),
        ));
    }
    state.status = "reviewed".into();
    state.reviewed_by = Some(p.by.clone());
    save_review(ctx, tpld, job, &state).await?;
    log(
        ctx,
        &p.job,
        None,
        format!("certificate of job {} reviewed by {}", p.job, p.by),
    )
    .await;
    Ok(state)
}

/// Marks a reviewed certificate authorised by `by`, who neither calibrated nor reviewed.
pub(super) async fn authorise(
    ctx: &Context,
    tpld: &Tpld,
    mut p: Step,
) -> Result<Review, NodeError> {
    p.by = person(&p.by)?;
    check_sender(ctx, tpld, &p.by)?;
    let job = job(ctx, tpld, &p.job).await?;
    let mut state = review_of(&job);
    if state.status != "reviewed" {
        return Err(refused(
            "wrong_state",
            format!(
                "the certificate of `{}` is {}: it is authorised once reviewed",
                p.job, state.status
            ),
        ));
    }
    let data = gather(ctx, &tpld.config, &p.job, Extra::default()).await?;
    let reviewed_by_them = state
        .reviewed_by
        .as_deref()
        .is_some_and(|r| same_person(r, &p.by));
    if reviewed_by_them || among(&calibrators(&data), &p.by) {
        return Err(refused(
            "same_person",
            format!(
                "`{}` calibrated or reviewed job `{}`: a certificate is authorised by a second person",
                p.by, p.job
            ),
        ));
    }
    state.status = "authorised".into();
    state.authorised_by = Some(p.by.clone());
    save_review(ctx, tpld, job, &state).await?;
    log(
        ctx,
        &p.job,
        None,
        format!("certificate of job {} authorised by {}", p.job, p.by),
    )
    .await;
    Ok(state)
}

/// The final documents of `data` under a new number: stored through datad (with the
/// certificate it replaces, if any) and logged. Returns them.
async fn issue_as(
    ctx: &Context,
    tpld: &Tpld,
    job: &str,
    mut data: CertificateData,
    authoriser: &str,
) -> Result<Rendered, NodeError> {
    let now = mqttcal_core::clock::Timestamp::now().as_secs_f64();
    let today = date(now);
    let series = tpld.config.number_series.replace("{year}", &today[..4]);
    // The final data is checked before a number is taken, so bad data costs no number.
    data.status = Status::Issued;
    data.issued = Some(today.clone());
    data.number = format!("{series}-0000");
    complete(&data)?;
    let taken: Value = ask(
        ctx,
        &tpld.config.datad,
        "next_certificate_number",
        json!({ "series": series }),
    )
    .await?;
    let n = taken["number"].as_u64().unwrap_or(0);
    let number = format!("{series}-{n:04}");
    data.number = number.clone();
    let replaces = data.amends.as_ref().map(|a| a.replaces.clone());
    // A number taken is never given again: one that ends up unused is said in the logbook.
    let taken = number.as_str();
    let void = |e: NodeError| async move {
        log(
            ctx,
            job,
            Some(taken),
            format!("certificate number {taken} taken for job {job} and not used: {e}"),
        )
        .await;
        e
    };
    let mut rendered = match render(tpld, data).await {
        Ok(r) => r,
        Err(e) => return Err(void(e).await),
    };
    if let Some(cfg) = &tpld.config.sign {
        match sign(cfg, &rendered).await {
            Ok(signed) => rendered.documents.push(signed),
            Err(e) => return Err(void(e).await),
        }
    }
    let _: Value = ask(
        ctx,
        &tpld.config.datad,
        "save_certificate",
        json!({
            "number": number,
            "job": job,
            "issued_at": now,
            "authorised_by": authoriser,
            "replaces": replaces,
            "data": rendered.data,
            "documents": rendered.documents,
        }),
    )
    .await?;
    let what = match &replaces {
        Some(old) => format!(
            "certificate {number} of job {job} issued, replacing {old}, authorised by {authoriser}"
        ),
        None => format!("certificate {number} of job {job} issued, authorised by {authoriser}"),
    };
    log(ctx, job, Some(&number), what).await;
    Ok(rendered)
}

/// The signed DCC of `rendered` (kind `dcc-signed`), by xmlsec1 off the async threads.
async fn sign(
    cfg: &super::SignConfig,
    rendered: &Rendered,
) -> Result<mqttcal_messages::CertificateDocument, NodeError> {
    let xml = rendered
        .documents
        .iter()
        .find(|d| d.kind == "dcc")
        .map(|d| String::from_utf8_lossy(&d.content.0).into_owned())
        .ok_or_else(|| NodeError::internal("no DCC to sign"))?;
    let signer = XmlSigner::new(&cfg.xmlsec1, &cfg.key, &cfg.certificate);
    let signed = tokio::task::spawn_blocking(move || signer.sign(&xml))
        .await
        .map_err(|e| NodeError::internal(format!("signing: {e}")))?
        .map_err(|e| NodeError::internal(format!("the DCC could not be signed: {e}")))?;
    Ok(mqttcal_messages::CertificateDocument {
        kind: "dcc-signed".into(),
        media_type: "application/xml".into(),
        content: mqttcal_messages::Base64(signed.into_bytes()),
    })
}

/// Replaces an issued certificate: a new number citing the original and why, authorised
/// by a person who did not calibrate; the original and its documents stay as they were.
pub(super) async fn amend(
    ctx: &Context,
    tpld: &Tpld,
    mut p: AmendRequest,
) -> Result<Rendered, NodeError> {
    p.by = person(&p.by)?;
    check_sender(ctx, tpld, &p.by)?;
    if p.reason.trim().is_empty() {
        return Err(NodeError::invalid_params(
            "`reason` must say why the certificate is replaced",
        ));
    }
    let original: Value = ask(
        ctx,
        &tpld.config.datad,
        "certificate",
        json!({ "id": p.number }),
    )
    .await?;
    // One amendment per certificate, so its history is a line: a later correction amends
    // the amendment (the store refuses a second one too, should two race).
    if let Some(by) = original["replaced_by"].as_str() {
        return Err(refused(
            "already_replaced",
            format!(
                "certificate `{}` is replaced already by `{by}`: amend `{by}`",
                p.number
            ),
        ));
    }
    let job_id = original["job"].as_str().unwrap_or_default().to_owned();
    let content_hash = original["content_hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut data = gather(ctx, &tpld.config, &job_id, Extra::default()).await?;
    if among(&calibrators(&data), &p.by) {
        return Err(refused(
            "same_person",
            format!(
                "`{}` calibrated job `{job_id}`: an amendment is authorised by somebody else",
                p.by
            ),
        ));
    }
    data.persons.push(Person {
        name: p.by.clone(),
        role: "authorised".into(),
        main_signer: true,
    });
    data.amends = Some(mqttcal_certificates::Amendment {
        replaces: p.number.clone(),
        reason: p.reason.clone(),
        content_hash,
    });
    issue_as(ctx, tpld, &job_id, data, &p.by).await
}

/// Issues an authorised certificate: a number never given before, the final documents
/// stored through datad and logged.
pub(super) async fn issue(
    ctx: &Context,
    tpld: &Tpld,
    p: IssueRequest,
) -> Result<Rendered, NodeError> {
    let job = job(ctx, tpld, &p.job).await?;
    let mut state = review_of(&job);
    let (Some(reviewer), Some(authoriser)) =
        (state.reviewed_by.clone(), state.authorised_by.clone())
    else {
        return Err(refused(
            "not_authorised",
            format!(
                "the certificate of `{}` is {}: it is issued once reviewed and authorised by a second person",
                p.job, state.status
            ),
        ));
    };
    if state.status != "authorised" {
        return Err(refused(
            "wrong_state",
            format!("the certificate of `{}` is {} already", p.job, state.status),
        ));
    }
    let mut data = gather(ctx, &tpld.config, &p.job, Extra::default()).await?;
    data.persons.push(Person {
        name: reviewer,
        role: "reviewed".into(),
        main_signer: false,
    });
    data.persons.push(Person {
        name: authoriser.clone(),
        role: "authorised".into(),
        main_signer: true,
    });
    let rendered = issue_as(ctx, tpld, &p.job, data, &authoriser).await?;
    state.status = "issued".into();
    state.number = Some(rendered.number.clone());
    save_review(ctx, tpld, job, &state).await?;
    Ok(rendered)
}

/// Issues each job of `p` in turn; one that cannot be issued is reported and the rest go
/// on. Each job's outcome goes out on `progress` (`batch`, `i`, `n`, `job`, `number` or
/// `problem`) as it comes.
pub(super) async fn batch(
    ctx: &Context,
    tpld: &Tpld,
    p: BatchRequest,
) -> Result<Vec<BatchItem>, NodeError> {
    if p.jobs.is_empty() || p.jobs.len() > BATCH_MAX {
        return Err(NodeError::invalid_params(format!(
            "`jobs`: 1 to {BATCH_MAX} jobs (got {})",
            p.jobs.len()
        )));
    }
    let id = format!(
        "{}-{}",
        ctx.caller().unwrap_or("tpld"),
        mqttcal_core::clock::Timestamp::now().as_micros()
    );
    let n = p.jobs.len();
    let mut items = Vec::with_capacity(n);
    for (i, job) in p.jobs.into_iter().enumerate() {
        let outcome = match tpld.turn(&job) {
            Ok(_turn) => issue(ctx, tpld, IssueRequest { job: job.clone() }).await,
            Err(e) => Err(e),
        };
        let item = match outcome {
            Ok(r) => BatchItem {
                job,
                number: Some(r.number),
                code: None,
                error: None,
            },
            Err(e) => BatchItem {
                job,
                number: None,
                code: Some(e.code.as_str().to_owned()),
                error: Some(e.message),
            },
        };
        let mut m = json!({"batch": id, "i": i + 1, "n": n, "job": item.job});
        match (&item.number, &item.error) {
            (Some(number), _) => m["number"] = json!(number),
            // `error` is the envelope's own (replies): a simple message says `problem`.
            (_, Some(e)) => m["problem"] = json!(e),
            _ => {}
        }
        if let Err(e) = ctx.send(super::PROGRESS, "*", &m).await {
            tracing::warn!("tpld: cannot send batch progress: {e}");
        }
        items.push(item);
    }
    Ok(items)
}
