//! Requests waiting for their replies, and their deadlines.
//!
//! One task per node ends the requests whose deadline has passed (their waiters see the
//! channel close), instead of a timer per request: a timer earlier than any the runtime
//! holds wakes the thread that waits for I/O, which on a two-core virtual machine costs
//! more than the round trip it guards. Deadlines only grow (now + timeout), so the task
//! mostly sleeps until a deadline already set and is woken only when a request's deadline
//! comes before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::envelope::Envelope;

/// One request waiting for replies.
struct Waiting {
    tx: mpsc::UnboundedSender<Envelope>,
    /// Its place in [`Table::by_deadline`].
    key: (Instant, u64),
}

/// The waiting requests, by id and by deadline (so that ending the expired ones costs what
/// they are, not what waits: a node that calls a dead one 10,000 times a second holds
/// 50,000 requests at a 5 s timeout).
#[derive(Default)]
struct Table {
    by_id: HashMap<String, Waiting>,
    by_deadline: BTreeMap<(Instant, u64), String>,
    /// Tells apart requests with the same deadline.
    next: u64,
}

/// The requests of one node that wait for replies.
pub(crate) struct Pending {
    table: Mutex<Table>,
    sweep: Arc<Sweep>,
}

/// What the sweeping task and the table share.
#[derive(Default)]
struct Sweep {
    /// When the task will next look; `None` while it waits for a request.
    next: Mutex<Option<Instant>>,
    wake: Notify,
    /// The table is gone: the task ends.
    closed: AtomicBool,
}

impl Pending {
    /// An empty table, and its sweeping task (which ends with the table).
    pub(crate) fn start() -> Arc<Self> {
        let pending = Arc::new(Self {
            table: Mutex::default(),
            sweep: Arc::default(),
        });
        tokio::spawn(sweep(Arc::downgrade(&pending), pending.sweep.clone()));
        pending
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the replies to `requestid` until `deadline`: the channel closes then.
    pub(crate) fn register(
        &self,
        requestid: &str,
        deadline: Instant,
    ) -> mpsc::UnboundedReceiver<Envelope> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut table = self.lock();
            let key = (deadline, table.next);
            table.next += 1;
            if let Some(old) = table
                .by_id
                .insert(requestid.to_owned(), Waiting { tx, key })
            {
                table.by_deadline.remove(&old.key);
            }
            table.by_deadline.insert(key, requestid.to_owned());
        }
        let mut next = self.sweep.next.lock().unwrap_or_else(|e| e.into_inner());
        if next.is_none_or(|n| deadline < n) {
            *next = Some(deadline);
            self.sweep.wake.notify_one();
        }
        rx
    }

    /// Stops waiting for `requestid`.
    pub(crate) fn forget(&self, requestid: &str) {
        let mut table = self.lock();
        if let Some(w) = table.by_id.remove(requestid) {
            table.by_deadline.remove(&w.key);
        }
    }

    /// Hands a reply to whoever waits for it; `false` if nobody does.
    pub(crate) fn deliver(&self, env: Envelope) -> bool {
        let Some(id) = env.requestid.as_deref() else {
            return false;
        };
        // Sent once the lock is released: the waiter, woken, forgets its request under it.
        let waiter = self.lock().by_id.get(id).map(|w| w.tx.clone());
        waiter.is_some_and(|tx| tx.send(env).is_ok())
    }

    /// Ends the requests whose deadline has passed; returns the earliest deadline left.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut table = self.lock();
        while let Some(entry) = table.by_deadline.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            let id = entry.remove();
            table.by_id.remove(&id);
        }
        None
    }

    /// How many requests wait.
    #[cfg(test)]
    fn len(&self) -> usize {
        let table = self.lock();
        assert_eq!(table.by_id.len(), table.by_deadline.len());
        table.by_id.len()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.sweep.closed.store(true, Ordering::Release);
        self.sweep.wake.notify_one();
    }
}

/// Ends expired requests until the table is gone.
async fn sweep(pending: Weak<Pending>, sweep: Arc<Sweep>) {
    loop {
        if sweep.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(table) = pending.upgrade() else {
            return;
        };
        let earliest = {
            // Held while the table is read: a request registered meanwhile compares its
            // deadline with what is set here, and notifies us if it comes first (the
            // permit makes the wait below return at once).
            let mut next = sweep.next.lock().unwrap_or_else(|e| e.into_inner());
            *next = table.expire(Instant::now());
            *next
        };
        drop(table);
        match earliest {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = sweep.wake.notified() => {}
                }
            }
            None => sweep.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reply(id: &str) -> Envelope {
        let mut env = Envelope::new("node", "me");
        env.requestid = Some(id.into());
        env
    }

    #[tokio::test]
    async fn a_request_ends_at_its_deadline_and_not_before() {
        let pending = Pending::start();
        let start = Instant::now();
        let mut late = pending.register("late", start + Duration::from_secs(60));
        let mut soon = pending.register("soon", start + Duration::from_millis(300));
        assert!(
            pending.deliver(reply("soon")),
            "still waiting before its deadline"
        );
        assert!(soon.recv().await.is_some());
        assert!(soon.recv().await.is_none(), "ended at its deadline");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "ended after {waited:?}"
        );
        assert!(!pending.deliver(reply("soon")));
        assert!(pending.deliver(reply("late")), "the later one still waits");
        assert!(late.recv().await.is_some());
        pending.forget("late");
        assert!(late.recv().await.is_none(), "forgotten");
    }

    #[tokio::test]
    async fn an_earlier_deadline_registered_later_is_kept() {
        let pending = Pending::start();
        let _long = pending.register("long", Instant::now() + Duration::from_secs(300));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut short = pending.register("short", Instant::now() + Duration::from_millis(200));
        let ended = tokio::time::timeout(Duration::from_secs(5), short.recv()).await;
        assert!(
            matches!(ended, Ok(None)),
            "ended after 200 ms, not after 300 s"
        );
    }

    #[tokio::test]
    async fn a_request_registered_while_the_task_sweeps_still_ends() {
        let pending = Pending::start();
        for round in 0..50 {
            let id = round.to_string();
            let mut rx = pending.register(&id, Instant::now() + Duration::from_millis(20));
            let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            assert!(matches!(ended, Ok(None)), "round {round} never ended");
        }
    }

    #[tokio::test]
    async fn many_expiring_requests_end_on_time_and_leave_nothing_behind() {
        let pending = Pending::start();
        let start = Instant::now();
        let mut waiting = Vec::new();
        for i in 0..20_000u64 {
            let deadline = start + Duration::from_millis(50 + i % 200);
            waiting.push(pending.register(&i.to_string(), deadline));
        }
        for i in 0..100 {
            pending.forget(&(i * 7).to_string());
        }
        for mut rx in waiting {
            let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            assert!(matches!(ended, Ok(None)));
        }
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "20,000 deadlines took {took:?}"
        );
        assert_eq!(pending.len(), 0);
    }

    #[tokio::test]
    async fn an_id_registered_again_replaces_the_first() {
        let pending = Pending::start();
        let mut first = pending.register("x", Instant::now() + Duration::from_millis(50));
        let mut second = pending.register("x", Instant::now() + Duration::from_secs(60));
        assert!(first.recv().await.is_none(), "replaced");
        assert_eq!(pending.len(), 1);
        assert!(pending.deliver(reply("x")));
        assert!(second.recv().await.is_some());
        pending.forget("x");
        assert_eq!(pending.len(), 0);
    }

    #[tokio::test]
    async fn the_sweeping_task_ends_with_the_table() {
        let pending = Pending::start();
        let sweep = pending.sweep.clone();
        drop(pending);
        for _ in 0..100 {
            if Arc::strong_count(&sweep) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the sweeping task still runs");
    }
}
