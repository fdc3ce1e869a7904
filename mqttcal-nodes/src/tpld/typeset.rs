//! Rendering off the async threads: a few documents at a time (one per core), each within
//! a time limit, so a flood of requests or a template that never ends cannot take the node
//! with it. A caller always gets an answer: the documents, `busy` when every slot stays
//! taken, or `timeout` when a rendering runs past the limit.

use std::sync::Arc;
use std::time::Duration;

use mqttcal_core::NodeError;
use tokio::sync::Semaphore;

/// How long a request waits for a free slot before it is told `busy`.
const WAIT: Duration = Duration::from_secs(3);
/// How long one rendering may take before its caller is told `timeout`.
const LIMIT: Duration = Duration::from_secs(60);

/// The rendering slots of a tpld.
#[derive(Debug)]
pub(super) struct Typesetter {
    slots: Arc<Semaphore>,
    count: usize,
    wait: Duration,
    limit: Duration,
}

impl Typesetter {
    /// One slot per core the machine has.
    pub(super) fn new() -> Self {
        let count = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with(count, WAIT, LIMIT)
    }

    fn with(count: usize, wait: Duration, limit: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(count)),
            count,
            wait,
            limit,
        }
    }

    /// Runs `render` on a blocking thread once a slot is free. A rendering past the limit
    /// keeps its slot until it ends (Typst cannot be interrupted), so the others go on.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        what: &str,
        render: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let permit =
            match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    return Err(NodeError::busy(format!(
                        "{} documents are being rendered; try again",
                        self.count
                    )))
                }
            };
        let task = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            render()
        });
        match tokio::time::timeout(self.limit, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(NodeError::internal(format!("rendering {what} failed: {e}"))),
            Err(_) => {
                tracing::error!(
                    "tpld: rendering {what} took over {} s; it holds one of {} rendering slots until it ends (a template that does not end?)",
                    self.limit.as_secs_f64(),
                    self.count
                );
                Err(NodeError::timeout(format!(
                    "rendering {what} took over {} s (a template that does not end?)",
                    self.limit.as_secs_f64()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rendering_past_the_limit_times_out_and_a_full_house_is_busy() {
        let t = Typesetter::with(1, Duration::from_millis(100), Duration::from_millis(200));
        assert_eq!(t.run("quick", || Ok(7)).await.unwrap(), 7);
        let slow = t.run("slow", || {
            std::thread::sleep(Duration::from_millis(800));
            Ok(())
        });
        let err = slow.await.unwrap_err();
        assert!(err.to_string().contains("took over 0.2 s"), "{err}");
        // The slow one still holds the only slot: the next caller is told so.
        let err = t.run("next", || Ok(())).await.unwrap_err();
        assert_eq!(err.code, mqttcal_core::ErrorCode::Busy, "{err}");
        // Once it ends, the slot is free again.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(t.run("after", || Ok(1)).await.unwrap(), 1);
    }
}
