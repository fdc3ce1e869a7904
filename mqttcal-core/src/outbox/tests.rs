use std::io::Write;

use super::file::OutboxFile;
use super::*;
use crate::transport::QoS;

fn message(n: u64) -> Outgoing {
    Outgoing {
        topic: "lab/meas".into(),
        payload: format!("{{\"seq\":{n}}}").into_bytes().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

/// An outbox file in a folder of its own, keeping three messages, and its path.
fn three_kept() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labd.outbox");
    let (mut f, _) = OutboxFile::open(&path, false).unwrap();
    for n in 0..3 {
        f.append(&message(n)).unwrap();
    }
    (dir, path)
}

fn payloads(state: &OutboxState) -> Vec<String> {
    state
        .kept
        .iter()
        .map(|k| String::from_utf8(k.message.payload.to_vec()).unwrap())
        .collect()
}

#[test]
fn what_is_not_confirmed_survives_a_reopening_with_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/labd.outbox");
    let (mut f, state) = OutboxFile::open(&path, false).unwrap();
    assert!(state.kept.is_empty() && state.last_id.is_none());
    for n in 0..5 {
        assert_eq!(f.append(&message(n)).unwrap(), n);
    }
    f.confirm(2).unwrap();
    assert_eq!(f.kept(), 2);
    drop(f);
    let state = inspect(&path).unwrap();
    assert_eq!(state.last_id, Some(4));
    assert_eq!(payloads(&state), [r#"{"seq":3}"#, r#"{"seq":4}"#]);
    let k = &state.kept[0];
    assert_eq!((k.id, k.message.topic.as_str()), (3, "lab/meas"));
    assert_eq!(k.message.qos, QoS::AtLeastOnce);
    let (mut f, _) = OutboxFile::open(&path, true).unwrap();
    assert_eq!(f.append(&message(5)).unwrap(), 5, "ids go on across runs");
    f.confirm(5).unwrap();
    drop(f);
    let state = inspect(&path).unwrap();
    assert!(state.kept.is_empty());
    assert_eq!(state.last_id, Some(5));
}

#[test]
fn a_torn_tail_is_cut_off_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labd.outbox");
    let (mut f, _) = OutboxFile::open(&path, false).unwrap();
    f.append(&message(0)).unwrap();
    f.append(&message(1)).unwrap();
    drop(f);
    let whole = std::fs::metadata(&path).unwrap().len();
    // Half a record, as a power cut mid-write leaves it.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
    drop(file);
    let state = inspect(&path).unwrap();
    assert_eq!(state.torn_bytes, 6);
    assert_eq!(state.kept.len(), 2);
    let (mut f, _) = OutboxFile::open(&path, false).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "cut off");
    assert_eq!(f.append(&message(2)).unwrap(), 2);
    drop(f);
    // A record whose body does not match its CRC.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let state = inspect(&path).unwrap();
    assert_eq!(payloads(&state), [r#"{"seq":0}"#, r#"{"seq":1}"#]);
    assert!(state.torn_bytes > 0);
}

#[test]
fn a_large_file_is_compacted_without_losing_what_is_kept_or_the_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labd.outbox");
    let (mut f, _) = OutboxFile::open(&path, false).unwrap();
    let big = Outgoing {
        payload: vec![b'x'; 64 * 1024].into(),
        ..message(0)
    };
    for _ in 0..40 {
        f.append(&big).unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() > 2 << 20);
    f.append(&message(40)).unwrap();
    f.confirm(39).unwrap();
    // Still one kept: the file grows until it is large or empty.
    assert_eq!(f.kept(), 1);
    f.confirm(40).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len < 128, "compacted to its high-water mark: {len} bytes");
    let compacted = inspect(&path).unwrap();
    assert!(compacted.kept.is_empty());
    let last = compacted
        .last_message
        .expect("where the run ended survives compaction");
    assert_eq!(last.payload, message(40).payload);
    assert_eq!(f.append(&message(41)).unwrap(), 41);
    drop(f);
    let state = inspect(&path).unwrap();
    assert_eq!(state.last_id, Some(41));
    assert_eq!(payloads(&state), [r#"{"seq":41}"#]);
}

#[test]
fn another_file_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labd.yaml");
    std::fs::write(&path, "labd:\n  lab-id: X\n").unwrap();
    let err = OutboxFile::open(&path, false).unwrap_err();
    assert!(err.to_string().contains("not an mqttcal outbox"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "labd:\n  lab-id: X\n"
    );
    assert!(inspect(&path).is_err());
}

#[test]
fn damage_before_the_tail_is_refused_and_a_zeroed_tail_cut() {
    let (_dir, path) = three_kept();
    let good = std::fs::read(&path).unwrap();
    // A flipped byte in the first record, with two good ones after it.
    let mut damaged = good.clone();
    damaged[super::file::MAGIC.len() + 12] ^= 0x55;
    std::fs::write(&path, &damaged).unwrap();
    let err = OutboxFile::open(&path, false).unwrap_err();
    assert!(err.to_string().contains("damaged at byte 8"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "left as it is");
    // A length byte raised so the first record seems to reach past the end (a cut write
    // would look so), with whole records after it: damage too, not a torn tail.
    let mut stretched = good.clone();
    stretched[super::file::MAGIC.len() + 2] = 0x01;
    std::fs::write(&path, &stretched).unwrap();
    let err = OutboxFile::open(&path, false).unwrap_err();
    assert!(err.to_string().contains("damaged at byte 8"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), stretched, "left as it is");
    // Zeros after the last record, as a power cut can leave an extended file.
    let mut zeroed = good.clone();
    zeroed.extend_from_slice(&[0; 4096]);
    std::fs::write(&path, &zeroed).unwrap();
    let (_, state) = OutboxFile::open(&path, false).unwrap();
    assert_eq!((state.kept.len(), state.torn_bytes), (3, 4096));
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn a_second_user_of_one_outbox_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labd.outbox");
    let (_first, _) = OutboxFile::open(&path, false).unwrap();
    let err = OutboxFile::open(&path, false).unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
}

#[test]
fn inspect_says_when_the_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = inspect(&dir.path().join("none")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn refused_messages_are_counted_and_set_aside_beside_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labd.outbox");
    let (outbox, _) = Outbox::open(&OutboxConfig::new(&path)).unwrap();
    outbox.set_aside(vec![crate::transport::Refused {
        message: message(7),
        reason: "refused by the broker: not authorized (0x87)".into(),
    }]);
    assert_eq!(outbox.refused(), 1);
    let aside = std::fs::read_to_string(refused_path(&path)).unwrap();
    let line: serde_json::Value = serde_json::from_str(aside.trim()).unwrap();
    assert_eq!(line["topic"], "lab/meas");
    assert_eq!(line["payload"], r#"{"seq":7}"#);
    assert!(line["reason"].as_str().unwrap().contains("0x87"));
    assert!(refused_path(&path).ends_with("labd.outbox.refused"));
}

/// The last message an earlier run appended tells the next run how to close it (its
/// `bye`), but not after a torn tail: the end of that run is then uncertain.
#[test]
fn no_earlier_run_is_closed_after_a_torn_tail() {
    let (_dir, path) = three_kept();
    let good = std::fs::read(&path).unwrap();
    let (_, last) = Outbox::open(&OutboxConfig::new(&path)).unwrap();
    assert_eq!(last.map(|m| m.payload), Some(message(2).payload));
    let mut torn = good.clone();
    torn.extend_from_slice(&[100, 0, 0, 0, 1, 2, 3, 4, b'M', 9, 9]);
    std::fs::write(&path, &torn).unwrap();
    let (_, last) = Outbox::open(&OutboxConfig::new(&path)).unwrap();
    assert!(last.is_none(), "closed after a torn tail");
}

/// An outbox reached through a symbolic link stays where the link points when it is
/// compacted: the link is not replaced by a file of its own.
#[cfg(unix)]
#[test]
fn compaction_keeps_a_symbolic_link() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("persist").join("labd.outbox");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let link = dir.path().join("labd.outbox");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (mut f, _) = OutboxFile::open(&link, false).unwrap();
    let big = Outgoing {
        payload: vec![b'x'; 64 * 1024].into(),
        ..message(0)
    };
    for _ in 0..40 {
        let id = f.append(&big).unwrap();
        f.confirm(id).unwrap();
    }
    drop(f);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let compacted = std::fs::metadata(&target).unwrap().len();
    assert!(
        compacted < 1 << 20,
        "the target was compacted: {compacted} bytes"
    );
    let (_, state) = OutboxFile::open(&link, false).unwrap();
    assert_eq!(state.last_id, Some(39));
}

/// A run that stopped cleanly (its `bye` confirmed) leaves the next run nothing to close;
/// the next run's own messages make it closable again.
#[test]
fn a_clean_stop_leaves_no_earlier_run_to_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labd.outbox");
    let (mut f, _) = OutboxFile::open(&path, false).unwrap();
    let id = f.append(&message(0)).unwrap();
    f.confirm(id).unwrap();
    f.ended().unwrap();
    drop(f);
    let (mut f, state) = OutboxFile::open(&path, false).unwrap();
    assert!(state.last_message.is_none());
    f.append(&message(1)).unwrap();
    drop(f);
    let (_, state) = OutboxFile::open(&path, false).unwrap();
    assert_eq!(
        state.last_message.map(|m| m.payload),
        Some(message(1).payload)
    );
}
