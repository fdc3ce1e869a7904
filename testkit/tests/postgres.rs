//! The PostgreSQL harness: a private cluster that can be stopped and restarted.

use mqttcal_testkit::Postgres;

#[test]
fn a_private_cluster_serves_a_fresh_database_and_survives_a_restart() {
    let mut pg = Postgres::start();
    pg.create_database("mqttcal_test");
    pg.psql(
        "mqttcal_test",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1);",
    );
    assert_eq!(pg.psql("mqttcal_test", "SELECT sum(x) FROM t"), "42");
    pg.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_err(),
        "the server still accepts connections after stop"
    );
    pg.restart();
    assert_eq!(pg.psql("mqttcal_test", "SELECT count(*) FROM t"), "2");
}
