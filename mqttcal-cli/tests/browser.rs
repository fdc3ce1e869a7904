//! The web interface in a real browser: headless Chromium, driven over WebDriver by Debian's
//! chromedriver, against a whole simulated lab on Mosquitto with PostgreSQL (labd on the
//! simulated instruments, datad, logd, cald, tpld, ctrld, webd, a custom node, and a node
//! in a process of its own to kill). An operator logs in, sees every node, checks an item
//! in, starts a calibration and watches it advance, watches the readings plot grow, calls
//! the custom node through its generated form (and sees a bad value's error beside its
//! field), downloads the draft certificate and its DCC; a node killed with SIGKILL turns
//! lost; the nodes page fits 390 px; a viewer is refused; a restarted ctrld knows the lab
//! again within 2 s. Screenshots go to `target/ui-screenshots/` (and to `docs/ui/` with
//! `MQTTCAL_UPDATE_SNAPSHOTS=1`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use mqttcal_core::{Client, NodeBuilder, NodeError, NodeHandle};
use mqttcal_instruments::sim::{LabParams, SimLab};
use mqttcal_nodes::ctrld::{self, CtrldConfig, Policy};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde::Deserialize;
use serde_json::{json, Value};

const DAY: f64 = 86_400.0;
const OPERATOR: (&str, &str) = ("ada", "ada's long password");
const VIEWER: (&str, &str) = ("vic", "vic's long password");

fn now() -> f64 {
    mqttcal_core::clock::Timestamp::now().as_secs_f64()
}

/// Parameters of the custom node's `read`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Read {
    /// Channel, 0 to 7.
    channel: u8,
}

/// A custom node, as a lab would write one: a thermometer with eight channels.
fn thermometer() -> NodeBuilder {
    NodeBuilder::new("thermo").capability(
        "read",
        "Read one channel, in degrees Celsius",
        |p: Read, _ctx| async move {
            if p.channel > 7 {
                return Err(NodeError::invalid_params("channel: 0 to 7")
                    .with_details(json!({"field": "channel"})));
            }
            Ok(json!({"channel": p.channel, "celsius": 23.0 + f64::from(p.channel) / 100.0}))
        },
    )
}

/// The reference Z2, as the simulator has it, with five yearly calibrations.
async fn register_z2(c: &Client, sim: &SimLab) {
    let (today, per_day) = {
        let model = sim.model.lock().unwrap();
        let z = &model.params().standards[1];
        (z.nominal + z.offset, z.drift_per_day)
    };
    register_reference(c, "Z2", today, per_day, now() + 200.0 * DAY).await;
}

/// Starts chromedriver on a free port; the process and its URL.
fn chromedriver() -> (Proc, String) {
    let port = mqttcal_testkit::free_port();
    let mut c = std::process::Command::new(mqttcal_testkit::chromedriver());
    c.arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let p = Proc::spawn(c);
    assert!(
        mqttcal_testkit::wait_for_port(port, Duration::from_secs(10)),
        "chromedriver did not listen on {port}"
    );
    (p, format!("http://127.0.0.1:{port}"))
}

/// Ends every Chromium process of a profile folder when dropped: one the test leaves in a
/// panic would otherwise outlive chromedriver and spin on.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(&self.0)
            .status();
    }
}

async fn browser(driver: &str, downloads: &Path, profile: &Profile) -> Browser {
    let caps = json!({
        "browserName": "chrome",
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": mqttcal_testkit::chromium(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,900", format!("--user-data-dir={}", profile.0.display())],
            "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false},
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session through chromedriver")
}

/// Waits (15 s at most) until `script` returns true in the page.
async fn until(b: &Browser, what: &str, script: &str) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let v = b.execute(script, vec![]).await.unwrap_or(Value::Null);
        if v == Value::Bool(true) {
            return;
        }
        if Instant::now() > end {
            let text = b
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!("{what}: not within 15 s; the page says:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(b: &Browser, script: &str) -> String {
    b.execute(script, vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn fill(b: &Browser, css: &str, text: &str) {
    let e = b
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` within 15 s: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(b: &Browser, css: &str) {
    let found = b
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await;
    let Ok(e) = found else {
        let url = b
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let text = b
            .execute("return document.body.innerText", vec![])
            .await
            .unwrap_or_default();
        panic!("no `{css}` within 15 s on {url}; the page says:\n{text}");
    };
    e.click().await.unwrap();
}

/// Saves a screenshot as `name`.png (in docs/ui/ too when snapshots are updated).
async fn shot(b: &Browser, name: &str) {
    let png = b.screenshot().await.unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("MQTTCAL_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(root.join(format!("docs/ui/{name}.png")), &png).unwrap();
    }
}

async fn login(b: &Browser, base: &str, (user, password): (&str, &str)) {
    b.goto(&format!("{base}login")).await.unwrap();
    fill(b, "#user", user).await;
    fill(b, "#password", password).await;
    click(b, "#login").await;
    until(
        b,
        "the nodes page after the login",
        "return document.body.dataset.page === 'nodes'",
    )
    .await;
}

/// Files of `dir` whose names end with `ext` and that are whole (no `.crdownload`).
fn downloaded(dir: &Path, ext: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_lab_from_a_browser_and_a_viewer_is_refused() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let url = broker.url();
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("browser"))
        .await
        .unwrap();
    let sim = SimLab::start_on(
        LabParams {
            time_factor: 0.02,
            ..LabParams::default()
        },
        "127.0.0.1".parse().unwrap(),
        [0; 5],
    )
    .await
    .unwrap();
    let t = transport(&url);
    let mut policy = Policy::default();
    policy
        .roles
        .get_mut("operator")
        .unwrap()
        .push("thermo.*".into());
    // The test's own client reads ctrld's `nodes`.
    policy.users.insert("test-*".into(), "viewer".into());
    let ctrld_config = CtrldConfig {
        policy: Some(policy),
        policy_file: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let mut people = mqttcal_webd::Users::default();
    people.set(OPERATOR.0, "operator", OPERATOR.1).unwrap();
    people.set(VIEWER.0, "viewer", VIEWER.1).unwrap();
    people.save(&users).unwrap();
    let (webd, base) = mqttcal_webd::node(
        "webd",
        mqttcal_webd::WebdConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().join("webd"),
            users_file: users,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let builders = vec![
        mqttcal_nodes::logd::node("logd", store.clone(), None),
        mqttcal_nodes::datad::node("datad", &Default::default(), store),
        mqttcal_nodes::labd::node("labd", mqttcal_nodes::labd::LabdConfig::for_sim_lab(&sim)),
        mqttcal_nodes::cald::node("cald", Default::default()),
        mqttcal_nodes::tpld::node("tpld", Default::default()).unwrap(),
        thermometer(),
        webd,
    ];
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for b in builders {
        nodes.push(b.build().start(&t).await.unwrap());
    }
    let ctrld = ctrld::node("ctrld", ctrld_config.clone())
        .unwrap()
        .build()
        .start(&t)
        .await
        .unwrap();
    let c = client(&url).await;
    for n in [
        "datad", "logd", "labd", "cald", "tpld", "ctrld", "webd", "thermo",
    ] {
        wait_ping(&c, n).await;
    }
    register_z2(&c, &sim).await;
    // A node in a process of its own, with a 2 s keep-alive: killed, the broker says it is
    // lost within 3 s.
    let config = dir.path().join("victim.yaml");
    std::fs::write(&config, "mqtt:\n  keepalive: 2\n").unwrap();
    let victim = Proc::spawn(mqttcal(
        &url,
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "base",
            "--name",
            "victim",
        ],
    ));
    wait_ping(&c, "victim").await;

    let (_driver, driver_url) = chromedriver();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let _profile = Profile(dir.path().join("chromium-profile"));
    let b = browser(&driver_url, &downloads, &_profile).await;

    // The operator sees every node of the lab.
    login(&b, &base, OPERATOR).await;
    let every = [
        "cald", "ctrld", "datad", "labd", "logd", "thermo", "tpld", "victim", "webd",
    ];
    until(
        &b,
        "every node up",
        &format!(
            "return {every:?}.every(n => {{ const r = document.querySelector(`tr[data-node=\"${{n}}\"]`); return r && r.classList.contains('up'); }})"
        ),
    )
    .await;
    shot(&b, "nodes").await;

    // A node killed with SIGKILL turns lost on the page, with no reload.
    victim.signal("KILL");
    let killed = Instant::now();
    until(
        &b,
        "the killed node shown lost",
        "const r = document.querySelector('tr[data-node=\"victim\"]'); return !!r && r.classList.contains('lost')",
    )
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "{:?}",
        killed.elapsed()
    );

    // 390 px wide: no horizontal scroll.
    b.set_window_size(390, 844).await.unwrap();
    b.refresh().await.unwrap();
    until(
        &b,
        "the nodes page at 390 px",
        "return document.querySelectorAll('#nodes tbody tr').length >= 9",
    )
    .await;
    let widths = b
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth]",
            vec![],
        )
        .await
        .unwrap();
    let (inner, scroll) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(inner <= 390, "the window is {inner} px wide");
    assert!(
        scroll <= inner,
        "{scroll} px of content in a {inner} px window"
    );
    shot(&b, "nodes-390px").await;
    b.set_window_size(1200, 900).await.unwrap();

    // Check an item in, through the form made from cald's schema.
    b.goto(&format!("{base}standards")).await.unwrap();
    fill(&b, "#f-checkin-id", "Z1").await;
    fill(&b, "#f-checkin-customer", "ACME <&\"> Metrology").await;
    fill(&b, "#f-checkin-serial", "1234567").await;
    fill(&b, "#f-checkin-nominal_value", "10").await;
    fill(&b, "#f-checkin-manufacturer", "Fluke").await;
    click(&b, "#cap-checkin button[type=submit]").await;
    until(
        &b,
        "Z1 in the register",
        "return [...document.querySelectorAll('#register a')].some(a => a.textContent === 'Z1')",
    )
    .await;
    shot(&b, "standards").await;
    b.goto(&format!("{base}standards/Z2")).await.unwrap();
    until(
        &b,
        "Z2's history plotted",
        "return document.getElementById('drift').dataset.points === '5'",
    )
    .await;
    shot(&b, "standard").await;

    // Start a calibration and watch its progress advance.
    b.goto(&format!("{base}jobs")).await.unwrap();
    fill(&b, "#f-start-item", "Z1").await;
    fill(&b, "#f-start-job", "J-UI-1").await;
    let procedure = json!({"name": "DCV-10V-DIFF", "reference": "Z2", "groups": 6, "readings": 4,
                           "NPLC": 10, "range": 0.1});
    fill(&b, "#f-start-procedure", &procedure.to_string()).await;
    b.execute(
        "window.seen = []; new MutationObserver(ms => ms.forEach(m => { if (m.target.dataset.job === 'J-UI-1') window.seen.push(Number(m.target.getAttribute('value'))); })).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['value']}); return true",
        vec![],
    )
    .await
    .unwrap();
    click(&b, "#cap-start button[type=submit]").await;
    until(
        &b,
        "progress advancing",
        "return (window.seen || []).filter(v => v > 0).length >= 2 && new Set(window.seen).size >= 2",
    )
    .await;
    shot(&b, "jobs").await;
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let job = c
            .context()
            .request("datad", "job", json!({"id": "J-UI-1"}))
            .await
            .unwrap();
        if job["status"] == "done" {
            break;
        }
        assert!(
            Instant::now() < end
                && !["failed", "cancelled"].contains(&job["status"].as_str().unwrap_or("")),
            "{job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ctrld named who started it: they may not review it.
    let job = c
        .context()
        .request("datad", "job", json!({"id": "J-UI-1"}))
        .await
        .unwrap();
    assert_eq!(job["body"]["operator"], OPERATOR.0, "{job}");

    // Its result, with the budget, and the draft certificate and DCC to download.
    b.goto(&format!("{base}jobs/J-UI-1")).await.unwrap();
    until(
        &b,
        "the result with its U",
        "return /U = /.test(document.getElementById('results').textContent)",
    )
    .await;
    assert!(
        text_of(
            &b,
            "return document.querySelector('table.budget').textContent"
        )
        .await
        .contains("Source"),
        "a budget table"
    );
    shot(&b, "job").await;
    let customer = json!({"name": "ACME <&\"> Metrology", "email": "lab@acme.example",
        "address": {"street": "Via Roma", "post_code": "10100", "city": "Torino", "country": "IT"}});
    fill(&b, "#f-certificate-customer", &customer.to_string()).await;
    click(&b, "#cap-certificate button[type=submit]").await;
    click(&b, "#cap-certificate a.download[data-kind=dcc]").await;
    click(&b, "#cap-certificate a.download[data-kind=html]").await;
    let end = Instant::now() + Duration::from_secs(15);
    while downloaded(&downloads, "xml").is_none() || downloaded(&downloads, "html").is_none() {
        assert!(
            Instant::now() < end,
            "no downloads in {}",
            downloads.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dcc = std::fs::read_to_string(downloaded(&downloads, "xml").unwrap()).unwrap();
    assert!(dcc.contains("digitalCalibrationCertificate"), "{dcc}");
    assert!(
        dcc.contains("ACME &lt;&amp;\"&gt; Metrology")
            || dcc.contains("ACME &lt;&amp;&quot;&gt; Metrology"),
        "{dcc}"
    );
    let page = std::fs::read_to_string(downloaded(&downloads, "html").unwrap()).unwrap();
    assert!(page.contains("DRAFT"), "the HTML draft says it is one");

    // Reviewed, authorised and issued (by two other people), it is listed with its
    // documents to download.
    let ctx = c.context();
    let own = ctx
        .request("tpld", "review", json!({"job": "J-UI-1", "by": OPERATOR.0}))
        .await
        .unwrap_err();
    assert!(
        own.to_string().contains("same_person") || own.to_string().contains("calibrated"),
        "{own}"
    );
    ctx.request(
        "tpld",
        "review",
        json!({"job": "J-UI-1", "by": "Rosa Reviewer"}),
    )
    .await
    .unwrap();
    ctx.request(
        "tpld",
        "authorise",
        json!({"job": "J-UI-1", "by": "Ugo Signer"}),
    )
    .await
    .unwrap();
    let issued = ctx
        .request("tpld", "issue", json!({"job": "J-UI-1"}))
        .await
        .unwrap();
    let number = issued["number"].as_str().unwrap().to_owned();
    for f in std::fs::read_dir(&downloads).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    b.goto(&format!("{base}certificates")).await.unwrap();
    until(
        &b,
        "the issued certificate listed",
        &format!("return document.getElementById('certificates').textContent.includes('{number}')"),
    )
    .await;
    shot(&b, "certificates").await;
    click(&b, "#certificates a.download[data-kind=dcc]").await;
    let end = Instant::now() + Duration::from_secs(15);
    while downloaded(&downloads, "xml").is_none() {
        assert!(Instant::now() < end, "no DCC in {}", downloads.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = downloaded(&downloads, "xml").unwrap();
    assert_eq!(
        file.file_name().unwrap().to_str().unwrap(),
        format!("{number}.dcc.xml")
    );
    let dcc = std::fs::read_to_string(file).unwrap();
    assert!(dcc.contains(&number) && !dcc.contains("DRAFT"), "{dcc}");

    // The live readings plot gains points as labd measures.
    b.goto(&format!("{base}readings")).await.unwrap();
    until(
        &b,
        "the readings page streaming",
        "return typeof EventSource === 'function' && !!document.getElementById('plot')",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.context()
        .request("labd", "measure", json!({"src": "Z1", "repetitions": 5}))
        .await
        .unwrap();
    until(
        &b,
        "5 points plotted",
        "return Number(document.getElementById('plot').dataset.points) >= 5",
    )
    .await;
    c.context()
        .request("labd", "measure", json!({"src": "Z1", "repetitions": 5}))
        .await
        .unwrap();
    until(
        &b,
        "10 points plotted",
        "return Number(document.getElementById('plot').dataset.points) >= 10",
    )
    .await;
    shot(&b, "readings").await;

    // The custom node's capability from its generated form; a bad value's error beside
    // the field it names.
    b.goto(&format!("{base}nodes/thermo")).await.unwrap();
    fill(&b, "#f-read-channel", "3").await;
    click(&b, "#cap-read button[type=submit]").await;
    until(&b, "thermo's reply", "const r = document.querySelector('#cap-read .reply'); return !!r && !r.hidden && r.textContent.includes('23.03')").await;
    // 300 is no u8: the page says so before sending; 9 is one, and the node says it is
    // no channel, beside the field its error names.
    let beside = "const e = document.querySelector('#cap-read .field[data-field=\"channel\"] .field-error'); return !!e && e.textContent";
    fill(&b, "#f-read-channel", "300").await;
    click(&b, "#cap-read button[type=submit]").await;
    until(
        &b,
        "the page's own check",
        &format!("{beside}.includes('at most 255')"),
    )
    .await;
    fill(&b, "#f-read-channel", "9").await;
    click(&b, "#cap-read button[type=submit]").await;
    until(
        &b,
        "the node's error beside the channel",
        &format!("{beside}.startsWith('invalid_params: thermo: channel: 0 to 7')"),
    )
    .await;
    shot(&b, "node-form").await;

    // The logbook: a manual entry, found again.
    b.goto(&format!("{base}logbook")).await.unwrap();
    fill(&b, "#entry-text", "Z1 arrived with a dented case").await;
    click(&b, "#write button[type=submit]").await;
    until(
        &b,
        "the entry listed",
        "return document.getElementById('entries').textContent.includes('dented case')",
    )
    .await;
    shot(&b, "logbook").await;

    // A viewer may look, and is refused a stop and a job start; the logbook names them.
    b.goto(&base).await.unwrap();
    click(&b, "form.logout button").await;
    login(&b, &base, VIEWER).await;
    // The page offers the viewer no stop and no start (ctrld's `allowed`), and the API
    // behind it answers 403 to both.
    let post = |node: &str, capability: &str| {
        format!(
            "const done = arguments[0]; fetch('/api/call', {{method: 'POST', headers: {{'content-type': 'application/json', 'x-csrf-token': document.querySelector('meta[name=csrf]').content}}, body: JSON.stringify({{node: '{node}', capability: '{capability}', params: {{item: 'Z1', procedure: {procedure}}}}})}}).then(r => done(r.status))"
        )
    };
    b.goto(&format!("{base}nodes/thermo")).await.unwrap();
    until(&b, "stop offered as not allowed", "const e = document.querySelector('#cap-stop'); return !!e && e.querySelector('button[type=submit]').disabled && e.closest('.card').querySelector('.form-error').textContent.includes('may not call')").await;
    let status = b
        .execute_async(&post("thermo", "stop"), vec![])
        .await
        .unwrap();
    assert_eq!(status, 403);
    b.goto(&format!("{base}jobs")).await.unwrap();
    until(&b, "start offered as not allowed", "const e = document.querySelector('#cap-start'); return !!e && e.querySelector('button[type=submit]').disabled").await;
    let status = b
        .execute_async(&post("cald", "start"), vec![])
        .await
        .unwrap();
    assert_eq!(status, 403);
    shot(&b, "viewer").await;
    let refused = c
        .context()
        .request("logd", "search", json!({"kind": "refused", "text": "vic"}))
        .await
        .unwrap()
        .to_string();
    assert!(
        refused.contains("thermo.stop") && refused.contains("cald.start"),
        "{refused}"
    );
    assert!(refused.contains("viewer"), "{refused}");

    // ctrld restarted while the lab runs knows every node again within 2 s.
    ctrld.stop().await.unwrap();
    let restarted = Instant::now();
    let _ctrld = ctrld::node("ctrld", ctrld_config)
        .unwrap()
        .build()
        .start(&t)
        .await
        .unwrap();
    let up = ["cald", "datad", "labd", "logd", "thermo", "tpld", "webd"];
    let mut last;
    loop {
        let asked = c
            .context()
            .request_timeout("ctrld", "nodes", json!({}), Duration::from_millis(500))
            .await;
        last = match &asked {
            Ok(v) => v.clone(),
            Err(e) => json!(e.to_string()),
        };
        if let Ok(v) = asked {
            let all = up.iter().all(|n| {
                v.as_array().unwrap().iter().any(|x| {
                    x["name"] == *n
                        && x["status"] == "up"
                        && !x["capabilities"].as_array().unwrap().is_empty()
                })
            });
            if all {
                break;
            }
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "presence not whole 2 s after ctrld's restart: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "ctrld knew the lab again {:?} after its restart",
        restarted.elapsed()
    );
    b.goto(&base).await.unwrap();
    until(
        &b,
        "the nodes page after ctrld's restart",
        "return document.querySelectorAll('#nodes tr.up').length >= 7",
    )
    .await;
    b.close().await.unwrap();
}
