//! A small HTTPS client for webd's tests and bench: one connection per request, cookies
//! kept by name, the server's certificate trusted as the only root.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// One answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The `Set-Cookie` header that sets `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of `<... name="NAME" ... content|value="...">` in the page.
    pub fn attribute_after(&self, marker: &str, attribute: &str) -> Option<String> {
        let at = self.body.find(marker)?;
        let rest = &self.body[at..];
        let key = format!("{attribute}=\"");
        let start = rest.find(&key)? + key.len();
        let end = rest[start..].find('"')?;
        Some(rest[start..start + end].to_owned())
    }
}

/// A browser's worth of state: the server, its certificate, the cookies.
pub struct Web {
    /// The server.
    pub addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The cookies kept, by name.
    pub cookies: BTreeMap<String, String>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("cookies", &self.cookies.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Web {
    /// A client of `url` (`https://127.0.0.1:PORT/`) trusting `cert` only; plain HTTP
    /// without a certificate.
    pub fn new(url: &str, cert: Option<&Path>) -> Self {
        let hostport = url
            .split("://")
            .nth(1)
            .unwrap()
            .trim_end_matches('/')
            .replace("localhost", "127.0.0.1");
        let addr: SocketAddr = hostport.parse().unwrap();
        let tls = cert.map(|cert| {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(cert).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        });
        Self {
            addr,
            tls,
            cookies: BTreeMap::new(),
        }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST path` with a form.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        self.send(
            Method::POST,
            path,
            Some(body.join("&").into_bytes()),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await
    }

    /// `POST path` with a JSON body and, if given, the CSRF token.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: &serde_json::Value,
        csrf: Option<&str>,
    ) -> Answer {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(t) = csrf {
            headers.push(("x-csrf-token", t));
        }
        self.send(
            Method::POST,
            path,
            Some(serde_json::to_vec(body).unwrap()),
            &headers,
        )
        .await
    }

    /// Logs in through the form; returns the answer to the form's post.
    pub async fn login(&mut self, user: &str, password: &str) -> Answer {
        let form = self.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let token = form.attribute_after("name=\"csrf\"", "value").unwrap();
        self.post_form(
            "/login",
            &[("user", user), ("password", password), ("csrf", &token)],
        )
        .await
    }

    /// The CSRF token a page carries.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.attribute_after("name=\"csrf\"", "content").unwrap()
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", c.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let answer = match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from("localhost").unwrap();
                let stream = tls.connect(name, tcp).await.unwrap();
                exchange(stream, req).await
            }
            None => exchange(tcp, req).await,
        };
        for v in answer.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        answer
    }

    /// Opens the event stream and returns the connection's body as it comes.
    pub async fn events(&mut self, query: &str) -> hyper::body::Incoming {
        let c: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = Request::builder()
            .uri(format!("/events{query}"))
            .header("host", self.addr.to_string())
            .header("cookie", c.join("; "))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let tls = self.tls.as_ref().expect("events over TLS");
        let stream = tls
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let r = request(stream, req).await;
        assert_eq!(r.status(), 200);
        r.into_body()
    }
}

/// Reads `body` until `want` appears in it (10 s at most); returns what was read.
pub async fn read_until(body: &mut hyper::body::Incoming, seen: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(want) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no `{want}` in the stream within 10 s: {seen}"))
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

/// Sends `req` on a connection of its own over `stream`.
async fn request<S>(stream: S, req: Request<Full<Bytes>>) -> hyper::Response<hyper::body::Incoming>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

async fn exchange<S>(stream: S, req: Request<Full<Bytes>>) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let r = request(stream, req).await;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
