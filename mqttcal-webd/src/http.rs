//! The HTTP side: TLS and plain-HTTP refusal, login, sessions, the pages, the JSON API the
//! pages' scripts call, and the live stream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State as AxState};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use mqttcal_core::{error_chain, CallError, Context, ErrorCode, NodeError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, Semaphore};

use crate::live::{Heard, Hub, TOPICS};
use crate::pages::Pages;
use crate::sessions::{same_secret, Session, Sessions, Throttle};
use crate::stall::Stall;
use crate::users::{self, Users};
use crate::{WebdConfig, WebdError};

/// The session cookie's name (`__Host-`: only this origin, over HTTPS, may set it).
const SESSION_COOKIE: &str = "__Host-mqttcal_session";
/// The login form's own CSRF cookie.
const LOGIN_COOKIE: &str = "__Host-mqttcal_login";
/// The most connections served at once.
const MOST_CONNECTIONS: usize = 1024;
/// The most connections from one address at once.
const CONNECTIONS_PER_ADDRESS: usize = 64;
/// The most live streams one person may hold open (all their sessions together).
const STREAMS_PER_PERSON: usize = 8;
/// The longest an ordinary request may take, body included (the live stream excepted).
const REQUEST_TIME: Duration = Duration::from_secs(30);
/// The most password checks at once (each takes 19 MiB and tens of milliseconds).
const CHECKS_AT_ONCE: usize = 2;
/// How long webd waits for ctrld.
const CTRLD_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest request body (a form's parameters).
const LARGEST_BODY: usize = 64 * 1024;

/// What webd knows before it is connected.
pub(crate) struct State {
    config: WebdConfig,
    users: Mutex<Cached>,
    sessions: Sessions,
    throttle: Throttle,
    hub: Hub,
    pages: Pages,
    checks: Arc<Semaphore>,
    streams: Mutex<std::collections::HashMap<String, usize>>,
}

struct Cached {
    users: Arc<Users>,
    modified: Option<(SystemTime, u64)>,
}

impl State {
    pub(crate) fn new(config: WebdConfig, users: Users, hub: Hub) -> Result<Self, WebdError> {
        let modified = modified(&config.users_file);
        Ok(Self {
            config,
            users: Mutex::new(Cached {
                users: Arc::new(users),
                modified,
            }),
            sessions: Sessions::default(),
            throttle: Throttle::default(),
            hub,
            pages: Pages::new().map_err(|e| WebdError::Config(e.to_string()))?,
            checks: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
            streams: Mutex::default(),
        })
    }

    /// The users, read again when the file changed (`mqttcal users add` while webd runs).
    fn users(&self) -> Arc<Users> {
        let mut c = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let now = modified(&self.config.users_file);
        if now != c.modified {
            match Users::load(&self.config.users_file) {
                Ok(u) => {
                    tracing::info!(users = u.all().len(), "webd read its users file again");
                    c.users = Arc::new(u);
                    c.modified = now;
                }
                Err(e) => tracing::warn!("webd keeps its users as they were: {e}"),
            }
        }
        c.users.clone()
    }

    /// A cookie only this origin sends and reads (`Secure` even behind a TLS proxy with
    /// `insecure_http`: browsers keep it over http://localhost as well).
    fn cookie(&self, name: &str, value: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict"
        ))
        .expect("cookie text is ASCII")
    }

    fn forget_cookie(&self, name: &str) -> HeaderValue {
        self.cookie(name, "; Max-Age=0")
    }

    /// The session of cookie token `id` when it is live and its person still has the role
    /// and password they logged in with.
    fn session(&self, id: &str) -> Option<Session> {
        let session = self.sessions.get(id)?;
        let users = self.users();
        let same = users
            .get(&session.user)
            .is_some_and(|u| u.role == session.role && u.stamp() == session.stamp);
        if !same {
            self.sessions.close(id);
            return None;
        }
        Some(session)
    }

    /// Where a request comes from: the peer, or what a trusted proxy says it forwards.
    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> std::net::IpAddr {
        if self.config.trusted_proxy == Some(peer.ip()) {
            let forwarded = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok());
            if let Some(ip) = forwarded {
                return ip;
            }
        }
        peer.ip()
    }
}

/// The users file's time and size: a change to either is read again.
fn modified(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// webd's state with its connection to the broker.
#[derive(Clone)]
struct App {
    state: Arc<State>,
    ctx: Context,
}

/// Serves `listener` until the node stops (this task is then cancelled, and with it every
/// connection).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: State,
    ctx: Context,
) {
    let app = router(App {
        state: Arc::new(state),
        ctx,
    });
    let slots = Arc::new(Semaphore::new(MOST_CONNECTIONS));
    let per_address: Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Arc::default();
    let mut connections = tokio::task::JoinSet::new();
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("webd cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    "webd serves {MOST_CONNECTIONS} connections already: refused"
                );
            }
            continue;
        };
        let Some(from) = AddressSlot::take(&per_address, peer.ip()) else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(refused, %peer, "{CONNECTIONS_PER_ADDRESS} connections from one address already: refused");
            }
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _slots = (slot, from);
            connection(stream, peer, tls, app).await;
        });
    }
}

/// One of an address's connections, counted until dropped.
struct AddressSlot {
    map: Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl AddressSlot {
    fn take(
        map: &Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
    ) -> Option<Self> {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(Self {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// One connection: TLS (a client speaking plain HTTP is told to use HTTPS and nothing
/// more), then HTTP/1.1.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http1(Stall::new(stream), peer, app).await,
        Some(config) => {
            let mut first = [0u8; 1];
            let peeked =
                tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await;
            if !matches!(peeked, Ok(Ok(1))) {
                return;
            }
            // 0x16 opens a TLS handshake; anything else is not TLS (plain HTTP, most often).
            if first[0] != 0x16 {
                refuse_plain(stream).await;
                return;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http1(Stall::new(tls), peer, app).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake took over 10 s"),
            }
        }
    }
}

/// Answers a plain-HTTP request on the HTTPS port with advice, and closes.
async fn refuse_plain(mut stream: tokio::net::TcpStream) {
    let body = "This server speaks HTTPS only: open it with https://\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}

async fn http1<S>(stream: S, peer: SocketAddr, app: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { tower_service::Service::call(&mut app, req).await }
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(nodes_page))
        .route("/nodes/:name", get(node_page))
        .route("/readings", get(|a, s| shell(a, s, 0)))
        .route("/standards", get(|a, s| shell(a, s, 1)))
        .route("/jobs", get(|a, s| shell(a, s, 2)))
        .route("/logbook", get(|a, s| shell(a, s, 3)))
        .route("/certificates", get(|a, s| shell(a, s, 4)))
        .route("/standards/:id", get(standard_page))
        .route("/jobs/:id", get(job_page))
        .route("/download/certificate/:number/:kind", get(download_issued))
        .route("/api/nodes", get(api_nodes))
        .route("/api/status", get(api_status))
        .route("/api/map/:node", get(api_map))
        .route("/api/allowed/:node", get(api_allowed))
        .route("/api/call", post(api_call))
        .route("/events", get(events))
        .route("/assets/:file", get(asset))
        .layer(axum::extract::DefaultBodyLimit::max(LARGEST_BODY))
        .layer(axum::middleware::from_fn(time_limit))
        .layer(axum::middleware::map_response_with_state(
            app.clone(),
            security_headers,
        ))
        .with_state(app)
}

/// Ends a request (its body included) that takes longer than [`REQUEST_TIME`]; the live
/// stream is long by nature and is excepted.
async fn time_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.uri().path() == "/events" {
        return next.run(req).await;
    }
    match tokio::time::timeout(REQUEST_TIME, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "the request took too long\n").into_response(),
    }
}

/// Headers on every answer: no framing, no sniffing, scripts and styles only our own; HSTS
/// with a certificate of the lab's (not a self-signed one, which a browser could then no
/// longer be told to accept).
async fn security_headers(AxState(app): AxState<App>, mut r: Response) -> Response {
    if app.state.config.tls_cert.is_some() && !app.state.config.insecure_http {
        r.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The logged-in person a request comes from.
struct Authed {
    id: String,
    session: Session,
}

/// No live session: pages go to the login form, the API answers 401.
struct NotLoggedIn {
    api: bool,
}

impl IntoResponse for NotLoggedIn {
    fn into_response(self) -> Response {
        if self.api {
            api_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "log in first (the session ended or never began)",
            )
        } else {
            Redirect::to("/login").into_response()
        }
    }
}

#[axum::async_trait]
impl FromRequestParts<App> for Authed {
    type Rejection = NotLoggedIn;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, NotLoggedIn> {
        let path = parts.uri.path();
        let api = path.starts_with("/api/") || path == "/events";
        let id = cookie(&parts.headers, SESSION_COOKIE).ok_or(NotLoggedIn { api })?;
        // A person removed, or given another role or password, since logging in starts
        // again.
        let session = app.state.session(id).ok_or(NotLoggedIn { api })?;
        Ok(Self {
            id: id.to_owned(),
            session,
        })
    }
}

impl Authed {
    /// Whether `given` is the session's CSRF token.
    fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| same_secret(g, &self.session.csrf))
    }
}

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn csrf_refused() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the request lacks this page's CSRF token: reload the page",
    )
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn login_page(AxState(app): AxState<App>) -> Response {
    login_form(&app, StatusCode::OK, None)
}

/// The login form with a fresh login token in a cookie and a hidden field.
fn login_form(app: &App, status: StatusCode, problem: Option<&str>) -> Response {
    let token = crate::sessions::token();
    let body = app.state.pages.login(&token, problem);
    let mut r = html(status, body);
    r.headers_mut()
        .insert(header::SET_COOKIE, app.state.cookie(LOGIN_COOKIE, &token));
    r
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    csrf: String,
}

/// The one answer to a wrong name or password, whichever was wrong.
const WRONG_LOGIN: &str = "Wrong user name or password.";

async fn login(
    AxState(app): AxState<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let state = &app.state;
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &form.csrf)) {
        return login_form(
            &app,
            StatusCode::FORBIDDEN,
            Some("The login form had expired: it is fresh now, log in again."),
        );
    }
    let name = form.user.trim().to_owned();
    let from = state.client(peer, &headers);
    if let Err(wait) = state.throttle.begin(&name, from) {
        let secs = wait.as_secs() + 1;
        let mut r = login_form(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!("Too many failed logins: try again in {secs} s.")),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let users = state.users();
    // The slot goes with the check: a client that hangs up does not free it early.
    let Ok(check) = state.checks.clone().acquire_owned().await else {
        return login_form(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("webd is stopping."),
        );
    };
    let (who, password) = (name.clone(), form.password);
    let found = tokio::task::spawn_blocking(move || {
        let _check = check;
        users::verify(&users, &who, &password)
            .map(|u| (u.name.clone(), u.role.clone(), u.stamp().to_owned()))
    })
    .await
    .ok()
    .flatten();
    let Some((user, role, stamp)) = found else {
        tracing::info!(client = %from, user = %name.escape_debug(), "failed login");
        return login_form(&app, StatusCode::UNAUTHORIZED, Some(WRONG_LOGIN));
    };
    state.throttle.succeeded(&name, from);
    tracing::info!(client = %from, %user, %role, "logged in");
    let id = state.sessions.open(&user, &role, &stamp);
    let mut r = Redirect::to("/").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, state.cookie(SESSION_COOKIE, &id));
    r.headers_mut()
        .append(header::SET_COOKIE, state.forget_cookie(LOGIN_COOKIE));
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    AxState(app): AxState<App>,
    authed: Authed,
    Form(form): Form<CsrfForm>,
) -> Response {
    // A stale page's token (the person logged in again elsewhere) goes back to a page.
    if !authed.csrf_ok(Some(&form.csrf)) {
        return Redirect::to("/").into_response();
    }
    app.state.sessions.close(&authed.id);
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, app.state.forget_cookie(SESSION_COOKIE));
    r
}

/// Asks ctrld's `capability` (`nodes`, `status`) for the session's person.
async fn read_ctrld(app: &App, session: &Session, capability: &str) -> Result<Value, CallError> {
    let for_them = json!({"user": session.user, "role": session.role});
    app.ctx
        .request_timeout(&app.state.config.ctrld, capability, for_them, CTRLD_TIMEOUT)
        .await
}

async fn nodes_page(AxState(app): AxState<App>, authed: Authed) -> Response {
    let nodes = read_ctrld(&app, &authed.session, "nodes").await;
    let (nodes, problem) = match nodes {
        Ok(v) => (v, None),
        Err(e) => (json!([]), Some(ctrld_problem(&app, &e))),
    };
    html(
        StatusCode::OK,
        app.state
            .pages
            .nodes(&authed.session, &nodes, problem.as_deref()),
    )
}

async fn node_page(
    AxState(app): AxState<App>,
    authed: Authed,
    Path(name): Path<String>,
) -> Response {
    html(StatusCode::OK, app.state.pages.node(&authed.session, &name))
}

/// A page of [`SHELLS`](crate::pages::SHELLS), by index.
async fn shell(AxState(app): AxState<App>, authed: Authed, which: usize) -> Response {
    html(
        StatusCode::OK,
        app.state.pages.shell(&authed.session, which),
    )
}

async fn standard_page(
    AxState(app): AxState<App>,
    authed: Authed,
    Path(id): Path<String>,
) -> Response {
    html(
        StatusCode::OK,
        app.state.pages.about(&authed.session, "standard", &id),
    )
}

async fn job_page(AxState(app): AxState<App>, authed: Authed, Path(id): Path<String>) -> Response {
    html(
        StatusCode::OK,
        app.state.pages.about(&authed.session, "job", &id),
    )
}

/// An issued certificate's document (`dcc`, `html`, `pdf`), from datad, as a download.
async fn download_issued(
    AxState(app): AxState<App>,
    authed: Authed,
    Path((number, kind)): Path<(String, String)>,
) -> Response {
    let params = json!({ "id": number });
    let record = call_for(&app, &authed.session, "datad", "certificate", params).await;
    document(&app, record, &number, &kind)
}

/// The `kind` document of a certificate `reply`, as an attachment named after
/// `name`: never shown in webd's origin (an HTML certificate is the lab's own markup).
fn document(app: &App, reply: Result<Value, CallError>, name: &str, kind: &str) -> Response {
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return answer(app, Err(e)),
    };
    let documents = reply["documents"].as_array().cloned().unwrap_or_default();
    let Some(doc) = documents.iter().find(|d| d["kind"] == kind) else {
        let kinds: Vec<&str> = documents
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        return api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "`{name}` has no `{kind}` document (it has: {})",
                kinds.join(", ")
            ),
        );
    };
    use base64::Engine;
    let bytes = doc["content"]
        .as_str()
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok());
    let Some(bytes) = bytes else {
        return api_error(
            StatusCode::BAD_GATEWAY,
            "link",
            "the document's content is not base64",
        );
    };
    let media = doc["media_type"]
        .as_str()
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let file = mqttcal_messages::CertificateDocument::file_name(name, kind);
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, media);
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    r
}

/// What to tell a person when ctrld did not answer.
fn ctrld_problem(app: &App, e: &CallError) -> String {
    let ctrld = &app.state.config.ctrld;
    match e {
        CallError::Timeout { .. } => format!(
            "{ctrld} does not answer: is it running? (every call from this page goes through it)"
        ),
        other => format!("{ctrld}: {}", error_chain(other)),
    }
}

/// The HTTP status that tells a browser what a node's error code means.
fn status_of(code: &ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::InvalidParams | ErrorCode::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnknownCapability => StatusCode::NOT_FOUND,
        ErrorCode::Busy => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Link => StatusCode::BAD_GATEWAY,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Refused => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// ctrld's answer as the API gives it: `{"reply": ...}`, or `{"error": {code, message,
/// details}}` with the status its code means.
fn answer(app: &App, outcome: Result<Value, CallError>) -> Response {
    match outcome {
        Ok(reply) => Json(json!({ "reply": reply })).into_response(),
        Err(CallError::Remote { error, .. }) => {
            (status_of(&error.code), Json(json!({ "error": error }))).into_response()
        }
        Err(e) => {
            let error = NodeError::link(ctrld_problem(app, &e));
            (StatusCode::BAD_GATEWAY, Json(json!({ "error": error }))).into_response()
        }
    }
}

/// Calls `node.capability` through ctrld for the session's person.
async fn call_for(
    app: &App,
    session: &Session,
    node: &str,
    capability: &str,
    params: Value,
) -> Result<Value, CallError> {
    let call = json!({
        "node": node, "capability": capability, "params": params,
        "user": session.user, "role": session.role,
    });
    app.ctx
        .request_timeout(&app.state.config.ctrld, "call", call, CTRLD_TIMEOUT)
        .await
}

/// [`call_for`], answered as the API answers.
async fn through_ctrld(
    app: &App,
    session: &Session,
    node: &str,
    capability: &str,
    params: Map<String, Value>,
) -> Response {
    let outcome = call_for(app, session, node, capability, Value::Object(params)).await;
    answer(app, outcome)
}

async fn api_nodes(AxState(app): AxState<App>, authed: Authed) -> Response {
    let outcome = read_ctrld(&app, &authed.session, "nodes").await;
    answer(&app, outcome)
}

async fn api_status(AxState(app): AxState<App>, authed: Authed) -> Response {
    let outcome = read_ctrld(&app, &authed.session, "status").await;
    answer(&app, outcome)
}

/// The capabilities of `node` the person's role may call (ctrld's `allowed`).
async fn api_allowed(
    AxState(app): AxState<App>,
    authed: Authed,
    Path(node): Path<String>,
) -> Response {
    let s = &authed.session;
    let asked = json!({"node": node, "user": s.user, "role": s.role});
    let outcome = app
        .ctx
        .request_timeout(&app.state.config.ctrld, "allowed", asked, CTRLD_TIMEOUT)
        .await;
    answer(&app, outcome)
}

async fn api_map(AxState(app): AxState<App>, authed: Authed, Path(node): Path<String>) -> Response {
    through_ctrld(&app, &authed.session, &node, "map", Map::new()).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    node: String,
    capability: String,
    #[serde(default)]
    params: Map<String, Value>,
}

async fn api_call(
    AxState(app): AxState<App>,
    authed: Authed,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !authed.csrf_ok(token) {
        return csrf_refused();
    }
    let call: CallBody = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the body must be {{\"node\", \"capability\", \"params\"}}: {e}"),
            )
        }
    };
    through_ctrld(
        &app,
        &authed.session,
        &call.node,
        &call.capability,
        call.params,
    )
    .await
}

#[derive(Deserialize)]
struct EventsQuery {
    /// Comma-separated topics (default all of them).
    topics: Option<String>,
}

/// Server-sent events: each message heard on the chosen topics as `event: <topic>` with
/// the message as data; a stream that falls more than the backlog behind gets `event:
/// lost` with how many it missed, and goes on. The person must be one whose role may read
/// ctrld's `status`; the stream ends with their session (checked at every keep-alive), or
/// when the client stops reading (see [`Stall`]); a person holds [`STREAMS_PER_PERSON`] at
/// most.
async fn events(
    AxState(app): AxState<App>,
    authed: Authed,
    Query(q): Query<EventsQuery>,
) -> Response {
    let wanted: Vec<&'static str> = match &q.topics {
        None => TOPICS.to_vec(),
        Some(list) => {
            let mut w = Vec::new();
            for t in list.split(',').filter(|t| !t.is_empty()) {
                match TOPICS.iter().find(|k| **k == t) {
                    Some(k) => w.push(*k),
                    None => {
                        return api_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_params",
                            &format!("topics are some of {}", TOPICS.join(", ")),
                        )
                    }
                }
            }
            w
        }
    };
    if let Err(e) = read_ctrld(&app, &authed.session, "status").await {
        return answer(&app, Err(e));
    }
    let Some(guard) = StreamSlot::take(&app.state, &authed.id, &authed.session.user) else {
        return api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            &format!("one person holds {STREAMS_PER_PERSON} live streams at most: close a page"),
        );
    };
    let rx = app.state.hub.subscribe();
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.reset();
    let stream = futures_util::stream::unfold(
        (rx, wanted, tick, guard),
        |(mut rx, wanted, mut tick, guard)| async move {
            loop {
                let heard = tokio::select! {
                    heard = rx.recv() => heard,
                    _ = tick.tick() => {
                        guard.state.session(&guard.id)?;
                        let e = Event::default().comment("");
                        return Some((Ok::<_, Infallible>(e), (rx, wanted, tick, guard)));
                    }
                };
                let e = match heard {
                    Ok(Heard { topic, json }) if wanted.contains(&topic) => {
                        Event::default().event(topic).data(&*json)
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Event::default().event("lost").data(n.to_string())
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(e), (rx, wanted, tick, guard)));
            }
        },
    );
    Sse::new(stream).into_response()
}

/// How often a live stream checks its session (and shows the connection alive).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One of a person's live streams, counted until dropped; it carries the session it checks.
struct StreamSlot {
    state: Arc<State>,
    id: String,
    user: String,
}

impl StreamSlot {
    fn take(state: &Arc<State>, id: &str, user: &str) -> Option<Self> {
        let mut m = state.streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(user.to_owned()).or_default();
        if *n >= STREAMS_PER_PERSON {
            return None;
        }
        *n += 1;
        Some(Self {
            state: state.clone(),
            id: id.to_owned(),
            user: user.to_owned(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut m = self.state.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (crate::pages::APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (crate::pages::APP_CSS, "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}
