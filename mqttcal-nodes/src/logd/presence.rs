//! Lost or only disconnected: a node whose will the broker published is reported lost only
//! when it does not come back in the same run.
//!
//! A broker that stops (a restart, an upgrade) publishes the will of every connected node,
//! and every node reconnects moments later with the same epoch. Writing "lost" for each
//! would fill the logbook with false alarms. So the will becomes a `disconnected` entry (the
//! fact, recorded at once), and the judgement follows: a `hello` in the same run makes the
//! node `rejoined`; a `hello` of a new run (it restarted) or no `hello` within the grace
//! period makes it `lost`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mqttcal_messages::References;

use super::NewEntry;

/// The kind of the entry written for a will.
pub(super) const DISCONNECTED: &str = "disconnected";
/// The tag prefix carrying the sender's run (`epoch:<e>`) on announcement entries.
pub(super) const EPOCH_TAG: &str = "epoch:";
/// How long a disconnected node may take to come back before it is reported lost.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Disconnected nodes followed at most (names come from the broker's traffic).
const MAX_PENDING: usize = 10_000;

#[derive(Debug, Clone)]
struct Pending {
    epoch: Option<u64>,
    since: Instant,
    /// The will's source: a node's will is the same message at every connection of a run,
    /// so once the node is back, a later will is a new event, not a redelivery.
    source: Option<String>,
}

/// What appending an announcement entry involves.
#[derive(Debug, Default)]
pub(super) struct Judgement {
    /// Entries to append before it (`lost`).
    pub(super) before: Vec<NewEntry>,
    /// A source to forget as seen (the will of a node that came back).
    pub(super) forget: Option<String>,
}

/// The nodes disconnected and not judged yet.
#[derive(Debug, Default)]
pub(super) struct Presence {
    pending: Mutex<HashMap<String, Pending>>,
}

/// The run an announcement entry names, from its tags.
pub(super) fn epoch_of(e: &NewEntry) -> Option<u64> {
    e.tags
        .iter()
        .find_map(|t| t.strip_prefix(EPOCH_TAG))
        .and_then(|v| v.parse().ok())
}

fn lost(node: &str, why: String, epoch: Option<u64>) -> NewEntry {
    let mut tags = vec!["announce".to_owned()];
    if let Some(e) = epoch {
        tags.push(format!("{EPOCH_TAG}{e}"));
    }
    NewEntry {
        kind: "lost".into(),
        node: Some(node.to_owned()),
        author: None,
        text: format!("{node} was lost: {why}"),
        tags,
        refs: References::default(),
        source: None,
    }
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `entry` is about to be appended: the entries to append before it, and `entry` as it
    /// should read (a `joined` in the same run becomes `rejoined`).
    pub(super) fn before_append(&self, entry: &mut NewEntry) -> Judgement {
        let Some(node) = entry.node.clone() else {
            return Judgement::default();
        };
        let epoch = epoch_of(entry);
        match entry.kind.as_str() {
            DISCONNECTED => {
                let mut pending = self.lock();
                if pending.len() < MAX_PENDING || pending.contains_key(&node) {
                    pending.insert(
                        node,
                        Pending {
                            epoch,
                            since: Instant::now(),
                            source: entry.source.clone(),
                        },
                    );
                }
                Judgement::default()
            }
            "joined" => match self.lock().remove(&node) {
                Some(p) if p.epoch.is_some() && p.epoch == epoch => {
                    entry.kind = "rejoined".into();
                    entry.text = format!(
                        "{node} came back in the same run: its connection had dropped (a broker restart or a network cut); it was not lost"
                    );
                    Judgement {
                        before: Vec::new(),
                        forget: p.source,
                    }
                }
                Some(p) => Judgement {
                    before: vec![lost(
                        &node,
                        "it came back as a new run (it had stopped without a bye)".into(),
                        p.epoch,
                    )],
                    forget: None,
                },
                None => Judgement::default(),
            },
            "left" => {
                self.lock().remove(&node);
                Judgement::default()
            }
            _ => Judgement::default(),
        }
    }

    /// The nodes disconnected longer than `grace` ago, taken out of the pending set, with
    /// the entries that report them lost.
    pub(super) fn expired(&self, grace: Duration) -> Vec<NewEntry> {
        let now = Instant::now();
        let mut pending = self.lock();
        let gone: Vec<String> = pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= grace)
            .map(|(n, _)| n.clone())
            .collect();
        gone.into_iter()
            .filter_map(|n| pending.remove(&n).map(|p| (n, p)))
            .map(|(n, p)| {
                lost(
                    &n,
                    format!("it did not come back within {} s", grace.as_secs_f64()),
                    p.epoch,
                )
            })
            .collect()
    }

    /// Puts back a judgement that could not be written (the database is away).
    pub(super) fn retry_later(&self, entry: &NewEntry) {
        if let Some(node) = &entry.node {
            self.lock().entry(node.clone()).or_insert(Pending {
                epoch: epoch_of(entry),
                since: Instant::now() - DEFAULT_GRACE * 10,
                source: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(kind: &str, node: &str, epoch: u64) -> NewEntry {
        NewEntry {
            kind: kind.into(),
            node: Some(node.into()),
            author: None,
            text: String::new(),
            tags: vec!["announce".into(), format!("{EPOCH_TAG}{epoch}")],
            refs: References::default(),
            source: None,
        }
    }

    #[test]
    fn a_node_back_in_the_same_run_was_not_lost_one_in_a_new_run_was() {
        let p = Presence::default();
        for node in ["labd", "datad"] {
            let mut will = announce(DISCONNECTED, node, 1);
            will.source = Some(format!("announce/{node}/t1"));
            assert!(p.before_append(&mut will).before.is_empty());
        }
        let mut back = announce("joined", "labd", 1);
        let j = p.before_append(&mut back);
        assert!(j.before.is_empty());
        assert_eq!(
            j.forget.as_deref(),
            Some("announce/labd/t1"),
            "its next will is news"
        );
        assert_eq!(back.kind, "rejoined");
        let mut restarted = announce("joined", "datad", 2);
        let before = p.before_append(&mut restarted).before;
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].kind, "lost");
        assert_eq!(restarted.kind, "joined");
        assert!(p.expired(Duration::ZERO).is_empty(), "both judged");
    }

    #[test]
    fn a_node_that_does_not_come_back_is_lost_after_the_grace() {
        let p = Presence::default();
        p.before_append(&mut announce(DISCONNECTED, "labd", 1));
        assert!(p.expired(Duration::from_secs(60)).is_empty());
        let lost = p.expired(Duration::ZERO);
        assert_eq!(lost.len(), 1);
        assert!(
            lost[0].text.contains("did not come back"),
            "{}",
            lost[0].text
        );
        assert!(p.expired(Duration::ZERO).is_empty(), "reported once");
    }
}
