use super::*;

#[test]
fn reads_the_report_keys() {
    let c = Config::from_yaml(
        "servicename: labd\nmqtt:\n  hostname: broker.lab\n  port: 8883\n  username: u\n  password: p\n  ca-cert: /etc/ca.pem\n  secure: false\nlabd:\n  dmm: TCPIP::1.2.3.4::5025::SOCKET\n",
        Path::new("base.yaml"),
    )
    .unwrap();
    assert_eq!(c.servicename.as_deref(), Some("labd"));
    assert_eq!(c.mqtt.hostname, "broker.lab");
    assert_eq!(c.mqtt.port, 8883);
    assert!(c.mqtt.uses_tls());
    assert!(!c.mqtt.secure);
    assert_eq!(c.sections["labd"]["dmm"], "TCPIP::1.2.3.4::5025::SOCKET");
}

#[test]
fn a_bad_value_names_the_file_the_key_and_the_expectation() {
    let err = Config::from_yaml("mqtt:\n  port: eighteen\n", Path::new("lab.yaml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("config file `lab.yaml`: key `mqtt.port`: "),
        "{text}"
    );
    assert!(text.contains("expected u16"), "{text}");
}

#[test]
fn a_misspelt_mqtt_key_is_refused() {
    let err = Config::from_yaml("mqtt:\n  hostnme: x\n", Path::new("c.yaml")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown field `hostnme`"), "{text}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Config::from_file(Path::new("/nonexistent/base.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read config file `/nonexistent/base.yaml`"
    );
}

#[test]
fn environment_overrides_the_file() {
    let mut c = Config::from_yaml("mqtt:\n  hostname: a\n  port: 1\n", Path::new("c")).unwrap();
    c.apply_env(|k| match k {
        "MQTTCAL_BROKER" => Some("mqtts://b.example:9000".into()),
        "MQTTCAL_PASSWORD" => Some("pw".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!((c.mqtt.hostname.as_str(), c.mqtt.port), ("b.example", 9000));
    assert!(c.mqtt.uses_tls());
    assert_eq!(c.mqtt.password.as_deref(), Some("pw"));
}

#[test]
fn broker_urls_parse_with_default_ports() {
    let mut m = MqttConfig::default();
    m.apply_url("mqtt://localhost").unwrap();
    assert_eq!(m.url(), "mqtt://localhost:1883");
    m.apply_url("mqtts://h").unwrap();
    assert_eq!(m.url(), "mqtts://h:8883");
    m.apply_url("mqtt://[::1]:1884").unwrap();
    assert_eq!((m.hostname.as_str(), m.port), ("::1", 1884));
    let problem = |url: &str| match m.clone().apply_url(url) {
        Err(ConfigError::BadUrl { problem, .. }) => problem,
        other => panic!("{url}: {other:?}"),
    };
    assert_eq!(
        problem("http://h"),
        "expected mqtt://host[:port] or mqtts://host[:port]"
    );
    assert_eq!(
        problem("mqtt://h:99999"),
        "the port is not a number from 0 to 65535"
    );
    assert_eq!(problem("mqtt://"), "the host is missing");
    assert_eq!(problem("mqtt://[::1"), "unclosed `[`");
}
