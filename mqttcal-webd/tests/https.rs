//! webd on Mosquitto, through ctrld, with logd on PostgreSQL: HTTPS only (plain HTTP gets
//! advice and nothing else), logins with one generic message and a throttle, sessions in
//! secure cookies, a CSRF token on every change, calls made in the person's name and
//! role (a viewer's refusal in the logbook), and the live stream of `announce` and `meas`.

use std::time::Duration;

use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::Client;
use mqttcal_nodes::ctrld::{self, CtrldConfig};
use mqttcal_testkit::web::{read_until, Web};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use mqttcal_webd::{Users, WebdConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn transport(url: &str) -> MqttTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    MqttTransport::new(cfg).connect_timeout(Duration::from_secs(3))
}

const ADA: (&str, &str) = ("ada", "ada's long password");
const VIC: (&str, &str) = ("vic", "vic's long password");

fn users_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("users");
    let mut users = Users::default();
    users.set(ADA.0, "operator", ADA.1).unwrap();
    users.set(VIC.0, "viewer", VIC.1).unwrap();
    users.save(&path).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_log_in_over_https_and_call_through_ctrld_as_their_role_allows() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("webd"))
        .await
        .unwrap();
    let t = transport(&url);
    let _logd = mqttcal_nodes::logd::node("logd", store, None)
        .build()
        .start(&t)
        .await
        .unwrap();
    let _ctrld = ctrld::node("ctrld", CtrldConfig::default())
        .unwrap()
        .build()
        .start(&t)
        .await
        .unwrap();
    let _testnode = mqttcal_nodes::base::node("testnode")
        .build()
        .start(&t)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = WebdConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().join("state"),
        users_file: users_file(dir.path()),
        ..Default::default()
    };
    let (webd, page) = mqttcal_webd::node("webd", config).await.unwrap();
    let _webd = webd.build().start(&t).await.unwrap();
    assert!(page.starts_with("https://127.0.0.1:"), "{page}");
    let cert = dir.path().join("state/webd-cert.pem");
    let mut ada = Web::new(&page, Some(&cert));

    // Plain HTTP on the HTTPS port: advice, no page, no cookie.
    let mut plain = tokio::net::TcpStream::connect(ada.addr).await.unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut said = String::new();
    plain.read_to_string(&mut said).await.unwrap();
    assert!(said.starts_with("HTTP/1.1 400"), "{said}");
    assert!(said.contains("HTTPS only"), "{said}");
    assert!(!said.to_lowercase().contains("set-cookie"), "{said}");

    // Not logged in: pages send to the form, the API answers 401.
    let r = ada.get("/").await;
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    assert_eq!(ada.get("/api/nodes").await.status, 401);

    // Wrong password and unknown name: one message.
    let wrong = ada.login(ADA.0, "not the password").await;
    let nobody = ada.login("nobody", ADA.1).await;
    for r in [&wrong, &nobody] {
        assert_eq!(r.status, 401);
        assert!(
            r.body.contains("Wrong user name or password."),
            "{}",
            r.body
        );
        assert!(r.set_cookie("__Host-mqttcal_session").is_none());
    }
    // A form posted without its own token (from another site) is refused.
    let forged = ada
        .post_form(
            "/login",
            &[("user", ADA.0), ("password", ADA.1), ("csrf", "x")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let r = ada.login(ADA.0, ADA.1).await;
    assert_eq!((r.status, r.location()), (303, Some("/")), "{}", r.body);
    let cookie = r.set_cookie("__Host-mqttcal_session").unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let nodes = ada.get("/").await;
    assert_eq!(nodes.status, 200);
    for name in ["ctrld", "logd", "testnode", "webd"] {
        assert!(
            nodes.body.contains(&format!("data-node=\"{name}\"")),
            "{name} missing: {}",
            nodes.body
        );
    }
    let csp = nodes.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let csrf = ada.csrf().await;

    // A call without the page's token is refused and never reaches ctrld.
    let call =
        json!({"node": "logd", "capability": "add", "params": {"author": "ada", "text": "hello"}});
    let r = ada.post_json("/api/call", &call, None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = ada.post_json("/api/call", &call, Some("forged")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // With it, the call goes through in ada's name.
    let r = ada.post_json("/api/call", &call, Some(&csrf)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Nobody writes in another's name.
    let as_bob =
        json!({"node": "logd", "capability": "add", "params": {"author": "bob", "text": "x"}});
    let r = ada.post_json("/api/call", &as_bob, Some(&csrf)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // A bad parameter comes back with the field it names.
    let bad = json!({"node": "logd", "capability": "search", "params": {"limit": "many"}});
    let r = ada.post_json("/api/call", &bad, Some(&csrf)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "invalid_params");
    assert_eq!(r.json()["error"]["details"]["field"], "limit", "{}", r.body);
    // The generated forms start from the node's map, read through ctrld.
    let map = ada.get("/api/map/testnode").await;
    assert_eq!(map.status, 200, "{}", map.body);
    assert!(map.body.contains("\"ping\""), "{}", map.body);

    // A viewer is refused a change: 403, and the logbook names them and the call.
    let mut vic = Web::new(&page, Some(&cert));
    assert_eq!(vic.login(VIC.0, VIC.1).await.status, 303);
    let vic_csrf = vic.csrf().await;
    let start = json!({"node": "cald", "capability": "start", "params": {}});
    let r = vic.post_json("/api/call", &start, Some(&vic_csrf)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let stop = json!({"node": "testnode", "capability": "stop", "params": {}});
    let r = vic.post_json("/api/call", &stop, Some(&vic_csrf)).await;
    assert!(matches!(r.status, 403 | 404), "{}", r.body);
    let me = Client::connect(&t, "test-reader", "").await.unwrap();
    let mut refused = Vec::new();
    for _ in 0..50 {
        refused = me
            .context()
            .request("logd", "search", json!({"kind": "refused"}))
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let texts: Vec<String> = refused.iter().map(|e| e.to_string()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("vic") && t.contains("cald.start") && t.contains("viewer")),
        "{texts:?}"
    );
    let calls = me
        .context()
        .request("logd", "search", json!({"kind": "call"}))
        .await
        .unwrap();
    assert!(
        calls.to_string().contains("ada (operator) called logd.add"),
        "{calls}"
    );

    // The live stream: a node arriving, a reading published.
    let mut stream = ada.events("?topics=announce,meas").await;
    let mut seen = String::new();
    let _late = mqttcal_nodes::base::node("latecomer")
        .build()
        .start(&t)
        .await
        .unwrap();
    read_until(&mut stream, &mut seen, "\"from\":\"latecomer\"").await;
    assert!(seen.contains("event: announce"), "{seen}");
    me.context()
        .publish("meas", json!({"DC-measurement": 10.000001, "src": ["Z9"]}))
        .await
        .unwrap();
    read_until(&mut stream, &mut seen, "\"Z9\"").await;
    assert!(seen.contains("event: meas"), "{seen}");
    // A message too large for a page is left out; the next one comes.
    me.context()
        .publish(
            "meas",
            json!({"DC-measurement": 1.0, "src": ["BIG"], "pad": "x".repeat(20_000)}),
        )
        .await
        .unwrap();
    me.context()
        .publish("meas", json!({"DC-measurement": 2.0, "src": ["Z8"]}))
        .await
        .unwrap();
    read_until(&mut stream, &mut seen, "\"Z8\"").await;
    assert!(!seen.contains("BIG"), "a 20 kB message reached the page");
    assert_eq!(ada.get("/events?topics=log").await.status, 400);
    // A session holds 8 live streams at most (this one holds one already).
    let mut more = Vec::new();
    for _ in 0..7 {
        more.push(ada.events("?topics=meas").await);
    }
    assert_eq!(ada.get("/events").await.status, 429);
    drop(more);

    // Logging out ends the session, whatever the browser keeps.
    let kept = ada.cookies.clone();
    let r = ada.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    ada.cookies = kept;
    assert_eq!(ada.get("/").await.status, 303);

    // Failed logins are throttled: after five from one address (two were ada's above),
    // even the right password waits.
    let mut mallory = Web::new(&page, Some(&cert));
    for _ in 0..3 {
        assert_eq!(mallory.login(VIC.0, "guess").await.status, 401);
    }
    assert_eq!(mallory.login(VIC.0, "guess").await.status, 429);
    let r = mallory.login(VIC.0, VIC.1).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_served_only_when_asked_and_then_without_secure_cookies() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let t = transport(&broker.url());
    let dir = tempfile::tempdir().unwrap();
    let config = WebdConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().join("state"),
        users_file: users_file(dir.path()),
        insecure_http: true,
        ..Default::default()
    };
    let (webd, page) = mqttcal_webd::node("webd", config).await.unwrap();
    let _webd = webd.build().start(&t).await.unwrap();
    assert!(page.starts_with("http://127.0.0.1:"), "{page}");
    assert!(!dir.path().join("state/webd-cert.pem").exists());
    let mut ada = Web::new(&page, None);
    let r = ada.login(ADA.0, ADA.1).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.set_cookie("__Host-mqttcal_session").unwrap();
    // Secure still: behind its TLS proxy the browser speaks HTTPS.
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // ctrld is not running: the page says so instead of hanging.
    let nodes = ada.get("/").await;
    assert_eq!(nodes.status, 200);
    assert!(
        nodes.body.contains("ctrld does not answer"),
        "{}",
        nodes.body
    );

    // A new password ends the sessions opened with the old one.
    let mut vic = Web::new(&page, None);
    assert_eq!(vic.login(VIC.0, VIC.1).await.status, 303);
    let path = dir.path().join("users");
    let mut users = Users::load(&path).unwrap();
    users.set(VIC.0, "viewer", "vic's new password").unwrap();
    users.save(&path).unwrap();
    assert_eq!(vic.get("/").await.status, 303);
    assert_eq!(vic.login(VIC.0, "vic's new password").await.status, 303);

    // A person added while webd runs can log in at once; one removed is logged out.
    let mut users = Users::load(&path).unwrap();
    users.set("new", "viewer", "a brand new password").unwrap();
    assert!(users.remove(ADA.0));
    // The file's time must differ from the one webd read.
    tokio::time::sleep(Duration::from_millis(20)).await;
    users.save(&path).unwrap();
    assert_eq!(ada.get("/").await.status, 303);
    let mut new = Web::new(&page, None);
    assert_eq!(new.login("new", "a brand new password").await.status, 303);
}
