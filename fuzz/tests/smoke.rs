//! A bounded run of every target (20,000 mutations each unless `MQTTCAL_FUZZ_CASES` says
//! otherwise), from the committed corpus.

use std::path::Path;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = env_number("MQTTCAL_FUZZ_CASES", 20_000);
    let seed = env_number("MQTTCAL_FUZZ_SEED", 1);
    for target in mqttcal_fuzz::TARGETS {
        let seeds = mqttcal_fuzz::corpus(&root.join("corpus"), target.name);
        assert!(!seeds.is_empty(), "no corpus for `{}`", target.name);
        let t0 = std::time::Instant::now();
        let report = mqttcal_fuzz::run(
            target,
            &root.join("corpus"),
            &root.join("found"),
            cases,
            seed,
        );
        println!(
            "{}: {} inputs in {:.1} s (seed {seed})",
            target.name,
            report.cases,
            t0.elapsed().as_secs_f64()
        );
        if let Some(path) = report.failure {
            // Again, with the panic message this time.
            let input = std::fs::read(&path).unwrap();
            (target.check)(&input);
            panic!(
                "`{}` failed on {} (no message)",
                target.name,
                path.display()
            );
        }
    }
}

#[test]
fn a_broken_parser_is_caught_and_its_input_kept() {
    fn fragile(input: &[u8]) {
        assert!(!input.windows(2).any(|w| w == b"}}"), "two braces");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("corpus/fragile")).unwrap();
    std::fs::write(dir.path().join("corpus/fragile/seed"), br#"{"a":{"b":1}"#).unwrap();
    let target = mqttcal_fuzz::Target {
        name: "fragile",
        check: fragile,
    };
    let report = mqttcal_fuzz::run(
        &target,
        &dir.path().join("corpus"),
        &dir.path().join("found"),
        100_000,
        3,
    );
    let found = report.failure.expect("the mutations find two braces");
    assert!(std::fs::read(found).unwrap().windows(2).any(|w| w == b"}}"));
}
