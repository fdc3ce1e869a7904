//! Our QoS 1 messages that the broker has not acknowledged, and the confirmations that
//! wait for them ([`Publisher::confirmed`](crate::transport::Publisher::confirmed)).
//!
//! Every QoS 1 message is numbered when it is first written. A confirmation is marked with
//! the last number given when the writer reaches it in the queue (so every message queued
//! before it has its number by then) and fires once no message numbered up to its mark
//! waits for an acknowledgement, on this connection or for the next one.

use std::collections::VecDeque;

use rumqttc::v5::mqttbytes::v5::Publish;
use tokio::sync::oneshot;

/// What [`Flight`] holds of one message: its number and the message.
pub(super) type Numbered = (u64, Publish);

/// What a confirmation reports: the messages among those it covers that the broker refused.
pub(super) type Refusals = Vec<crate::transport::Refused>;

/// The unacknowledged QoS 1 messages of a session, oldest first.
#[derive(Debug, Default)]
pub(super) struct Flight {
    /// Written on the current connection, in the order written.
    sent: VecDeque<Numbered>,
    /// Left by a broken connection, to be written again first; older than all of `sent`.
    resend: VecDeque<Numbered>,
    /// The last number given.
    numbered: u64,
    /// Confirmations waiting, by mark (in increasing order).
    waiting: VecDeque<(u64, oneshot::Sender<Refusals>)>,
    /// Messages the broker refused (or that could not go at all), by number, until a
    /// confirmation covering them reports them; kept only from the first call to
    /// `confirmed` on (a publisher that never asks would keep them for ever).
    refused: VecDeque<(u64, crate::transport::Refused)>,
    /// Whether `confirmed` was ever called.
    confirming: bool,
    /// Messages refused since the session started.
    refused_total: u64,
}

impl Flight {
    /// Messages written on this connection and not acknowledged: the in-flight window.
    pub(super) fn len(&self) -> usize {
        self.sent.len()
    }

    /// A message written for the first time.
    pub(super) fn sent(&mut self, p: Publish) {
        self.numbered += 1;
        self.sent.push_back((self.numbered, p));
    }

    /// A message of a broken connection, written again.
    pub(super) fn sent_again(&mut self, m: Numbered) {
        self.sent.push_back(m);
    }

    /// The broker acknowledged `pkid`, having taken it or (`refused`, a reason code of
    /// 0x80 or above) not; `false` if no message waited for that.
    pub(super) fn acked(&mut self, pkid: u16, refused: Option<String>) -> bool {
        let Some(i) = self.sent.iter().position(|(_, p)| p.pkid == pkid) else {
            return false;
        };
        if let (Some(reason), Some((n, p))) = (refused, self.sent.remove(i)) {
            self.refuse(n, p, reason);
        }
        self.settle();
        true
    }

    /// A QoS 1 message that cannot go at all (larger than the broker takes): numbered and
    /// refused at once.
    pub(super) fn unsendable(&mut self, p: Publish, reason: String) {
        self.numbered += 1;
        self.refuse(self.numbered, p, reason);
        self.settle();
    }

    /// The connection broke: what it had not acknowledged goes again, first, marked as
    /// a duplicate.
    pub(super) fn broke(&mut self) {
        while let Some((n, mut p)) = self.sent.pop_back() {
            p.dup = true;
            self.resend.push_front((n, p));
        }
    }

    /// The next message to write again.
    pub(super) fn next_resend(&mut self) -> Option<Numbered> {
        self.resend.pop_front()
    }

    /// Whether messages wait to be written again.
    pub(super) fn has_resend(&self) -> bool {
        !self.resend.is_empty()
    }

    /// A message could not be written again (it no longer fits the broker's limits): it
    /// is refused.
    pub(super) fn dropped(&mut self, (n, p): Numbered, reason: String) {
        self.refuse(n, p, reason);
        self.settle();
    }

    /// From now on refused messages are kept for a confirmation.
    pub(super) fn keep_refused(&mut self) {
        self.confirming = true;
    }

    /// Messages refused since the session started.
    pub(super) fn refused_total(&self) -> u64 {
        self.refused_total
    }

    /// Counts a refused message, and keeps it for a confirmation if any are asked for;
    /// logs the first and then at each power of two.
    fn refuse(&mut self, n: u64, p: Publish, reason: String) {
        self.refused_total += 1;
        if self.refused_total.is_power_of_two() {
            tracing::warn!(
                topic = %String::from_utf8_lossy(&p.topic),
                "{} message(s) refused by the broker or unsendable, the latest: {reason}",
                self.refused_total
            );
        }
        if self.confirming {
            self.refused.push_back((n, refusal(p, reason)));
        }
    }

    /// A confirmation for everything numbered so far; it fires at once if nothing waits.
    pub(super) fn confirm(&mut self, tx: oneshot::Sender<Refusals>) {
        self.confirming = true;
        self.waiting.push_back((self.numbered, tx));
        self.settle();
    }

    /// The session ended: confirmations waiting fail.
    pub(super) fn ended(&mut self) {
        self.waiting.clear();
    }

    /// Fires the confirmations whose messages are all acknowledged.
    fn settle(&mut self) {
        let oldest = self.resend.front().or(self.sent.front()).map(|(n, _)| *n);
        while let Some((mark, _)) = self.waiting.front() {
            if oldest.is_some_and(|o| o <= *mark) {
                break;
            }
            if let Some((mark, tx)) = self.waiting.pop_front() {
                let mut refused = Vec::new();
                while self.refused.front().is_some_and(|(n, _)| *n <= mark) {
                    if let Some((_, r)) = self.refused.pop_front() {
                        refused.push(r);
                    }
                }
                let _ = tx.send(refused);
            }
        }
    }
}

/// A refused message, as the application gave it.
fn refusal(p: Publish, reason: String) -> crate::transport::Refused {
    crate::transport::Refused {
        message: crate::transport::Outgoing {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload,
            qos: crate::transport::QoS::AtLeastOnce,
            retain: p.retain,
        },
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::QoS;

    fn publish(pkid: u16) -> Publish {
        let mut p = Publish::new("t", QoS::AtLeastOnce, vec![], None);
        p.pkid = pkid;
        p
    }

    #[test]
    fn a_confirmation_waits_for_every_message_before_it_across_a_break() {
        let mut f = Flight::default();
        f.sent(publish(1));
        f.sent(publish(2));
        let (tx, mut first) = oneshot::channel();
        f.confirm(tx);
        f.sent(publish(3));
        let (tx, mut second) = oneshot::channel();
        f.confirm(tx);
        assert!(f.acked(2, None));
        assert!(first.try_recv().is_err(), "1 is not acknowledged yet");
        f.broke();
        assert_eq!(f.len(), 0);
        let (n, p) = f.next_resend().unwrap();
        assert!(p.dup);
        f.sent_again((n, p));
        assert!(f.has_resend(), "3 still waits to go again");
        assert!(f.acked(1, None));
        assert!(first.try_recv().unwrap().is_empty(), "1 and 2 are taken");
        assert!(second.try_recv().is_err(), "3 waits to go again");
        let again = f.next_resend().unwrap();
        f.sent_again(again);
        assert!(!f.acked(9, None), "an unknown packet id");
        assert!(f.acked(3, Some("not authorized".into())));
        let refused = second.try_recv().unwrap();
        assert_eq!(refused.len(), 1, "3 was refused");
        assert_eq!(refused[0].reason, "not authorized");
        let (tx, mut idle) = oneshot::channel();
        f.confirm(tx);
        assert!(idle.try_recv().is_ok(), "nothing waits: at once");
        let (tx, mut last) = oneshot::channel();
        f.sent(publish(4));
        f.confirm(tx);
        f.ended();
        assert!(last.try_recv().is_err());
    }
}
