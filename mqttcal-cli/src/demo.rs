//! The demo records of `mqttcal lab`: the simulator's Z2 registered as the reference, with
//! yearly calibrations ending three months before today (so the tour works on any date),
//! and a procedure to run against it.

use mqttcal_core::clock::Timestamp;
use mqttcal_core::{error_chain, Context};
use mqttcal_instruments::sim::SimLab;
use serde_json::{json, Value};

use super::Failure;

const DAY: f64 = 86_400.0;

/// The reference of the demo.
pub(crate) const REFERENCE: &str = "Z2";

/// A procedure for the tour: four + − − + groups of five readings at 10 NPLC, about a
/// minute at real instrument timing.
pub(crate) fn procedure() -> Value {
    json!({"name": "DCV-10V-DIFF", "reference": REFERENCE, "groups": 4, "readings": 5,
           "NPLC": 10, "range": 0.1, "settle_s": 1,
           "limits": {"temperature": [21.0, 25.0], "humidity": [20.0, 70.0]}})
}

/// ctrld's configuration in the demo: the built-in roles, and every `mqttcal` command
/// (client names `cli-…`) an operator. On the lab's open broker any client can claim any
/// name; production ties names to logins (docs/deploying.md).
pub(crate) fn ctrld_config() -> mqttcal_nodes::ctrld::CtrldConfig {
    let mut policy = mqttcal_nodes::ctrld::Policy::default();
    policy.users.insert("cli-*".into(), "operator".into());
    mqttcal_nodes::ctrld::CtrldConfig {
        policy: Some(policy),
        policy_file: None,
    }
}

/// The simulated 3458A in the register, as cald's `instruments` names it: a job checks its
/// serial and due date, and the certificate lists it among the equipment used.
pub(crate) const DMM: (&str, &str) = ("dmm", "DMM-1");

/// Registers the DMM (due in seven months), the reference (due in nine) and, unless it has
/// one, the reference's history.
pub(crate) async fn seed(ctx: &Context, sim: &SimLab) -> Result<(), Failure> {
    let (today, per_day) = {
        let model = sim.model.lock().unwrap_or_else(|e| e.into_inner());
        let z = &model.params().standards[1];
        (z.nominal + z.offset, z.drift_per_day)
    };
    let now = Timestamp::now().as_secs_f64();
    let fail = |e: mqttcal_core::CallError| {
        Failure::connect(format!("cannot seed the demo records: {}", error_chain(&e)))
    };
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": REFERENCE, "kind": "standard", "description": "demo reference (simulated Zener, 10 V output)",
               "manufacturer": "Fluke", "model": "732B", "serial": "DEMO-0002", "owner": "the lab",
               "nominal_value": 10.0, "unit": "V", "calibration_due": now + 270.0 * DAY}),
    )
    .await
    .map_err(fail)?;
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": DMM.1, "kind": "instrument", "description": "demo DMM (simulated 3458A)",
               "manufacturer": "Keysight", "model": "3458A",
               "serial": mqttcal_instruments::sim::SIM_CALSTR, "owner": "the lab",
               "calibration_due": now + 210.0 * DAY}),
    )
    .await
    .map_err(fail)?;
    let history = ctx
        .request("datad", "history", json!({ "id": REFERENCE }))
        .await
        .map_err(fail)?;
    if history.as_array().is_some_and(|h| h.len() >= 2) {
        return Ok(());
    }
    // Scatter of a few tens of nV, as a real history shows.
    for (i, scatter) in [30e-9, -20e-9, 10e-9, -40e-9, 25e-9, -5e-9]
        .iter()
        .enumerate()
    {
        let back = 90.0 + 365.0 * (5 - i) as f64;
        ctx.request(
            "datad",
            "add_calibration",
            json!({"equipment": REFERENCE, "calibrated_at": now - back * DAY,
                   "value": today - per_day * back + scatter, "unit": "V",
                   "uncertainty": 0.2e-6, "coverage_factor": 2.0,
                   "certificate": format!("DEMO-{i}"), "laboratory": "a national metrology institute (demo)"}),
        )
        .await
        .map_err(fail)?;
    }
    Ok(())
}

/// The demo's people: `viewer`, `operator` and `admin`, each with a random password made at
/// the first start and kept (readable by its owner only) in `demo-logins` beside the users
/// file.
const DEMO_ROLES: [&str; 3] = ["viewer", "operator", "admin"];

/// webd for the lab, in `dir` (its self-signed certificate, users file and demo logins),
/// on `port` or a free one when it is taken; returns it with its URL and the operator's
/// password.
pub(crate) async fn webd(
    name: &str,
    dir: &std::path::Path,
    port: u16,
) -> Result<(mqttcal_core::NodeBuilder, String, String), Failure> {
    let users_file = dir.join("users");
    let logins = dir.join("demo-logins");
    let fail =
        |e: String| Failure::resource(format!("webd's demo users in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    if !users_file.exists() || !logins.exists() {
        let mut users = mqttcal_webd::Users::default();
        let mut text = String::from("# the demo's logins: name role password\n");
        for role in DEMO_ROLES {
            let password = mqttcal_webd::sessions::token()[..16].to_owned();
            users
                .set(role, role, &password)
                .map_err(|e| fail(e.to_string()))?;
            text.push_str(&format!("{role} {role} {password}\n"));
        }
        mqttcal_webd::write_private(&logins, text.as_bytes()).map_err(|e| fail(e.to_string()))?;
        users.save(&users_file).map_err(|e| fail(e.to_string()))?;
    }
    let operator = std::fs::read_to_string(&logins)
        .map_err(|e| fail(e.to_string()))?
        .lines()
        .find_map(|l| l.strip_prefix("operator operator ").map(str::to_owned))
        .ok_or_else(|| fail(format!("{} names no operator", logins.display())))?;
    let mut config = mqttcal_webd::WebdConfig {
        state_dir: dir.to_owned(),
        users_file,
        ..Default::default()
    };
    config.listen.set_port(port);
    let started = match mqttcal_webd::node(name, config.clone()).await {
        Err(mqttcal_webd::WebdError::Listen { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            println!("port {port} is taken: webd takes a free port instead");
            config.listen.set_port(0);
            mqttcal_webd::node(name, config).await
        }
        other => other,
    };
    let (builder, url) = started.map_err(|e| Failure::resource(e.to_string()))?;
    Ok((builder, url, operator))
}
