//! The progress of a call to one node: a bar on a terminal, and a sign of life that
//! restarts the wait.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use mqttcal_core::envelope::Envelope;
use mqttcal_core::{error_chain, Context, Gather};
use serde_json::{Map, Value};
use tokio::sync::mpsc::Receiver;

use super::Failure;

/// How a call to one node waits.
pub(crate) struct Wait {
    /// From the request, or from the last progress message.
    pub(crate) timeout: Duration,
    /// In all, however much progress comes.
    pub(crate) at_most: Duration,
}

/// What came of the wait: the replies (none if it ended first), whether progress came, and
/// whether the wait hit its ceiling.
pub(crate) struct Waited {
    pub(crate) replies: Vec<Envelope>,
    pub(crate) progressed: bool,
    pub(crate) at_most: bool,
}

/// Sends the request and waits for its reply, `timeout` from the start or from the last
/// progress message of `node` about this request, and `at_most` in all; shows the progress
/// as a bar on a terminal.
pub(crate) async fn wait_reply(
    ctx: &Context,
    mut progress: Receiver<Envelope>,
    node: &str,
    capability: &str,
    params: Map<String, Value>,
    wait: Wait,
) -> Result<Waited, Failure> {
    let far = Gather {
        timeout: wait.at_most,
        expect: Some(1),
    };
    let call = ctx.request_envelopes(node, capability, params, far);
    tokio::pin!(call);
    let me = ctx.name().to_owned();
    // Our request ids are `<our name>-<time>`: progress about another request is not ours.
    let ours = format!("{me}-");
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    let mut progressed = false;
    let mut idle = tokio::time::Instant::now() + wait.timeout;
    let result = loop {
        tokio::select! {
            r = &mut call => break r.map(|r| (r, true)).map_err(|e| Failure::reply(error_chain(&e))),
            () = tokio::time::sleep_until(idle) => break Ok((Vec::new(), false)),
            Some(env) = progress.recv() => {
                let about_ours = env.requestid.as_deref().is_some_and(|id| id.starts_with(&ours));
                if env.from != node || env.to != me || !about_ours {
                    continue;
                }
                progressed = true;
                idle = tokio::time::Instant::now() + wait.timeout;
                if tty {
                    let line = super::follow::bar_of(&env.fields);
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r{line}\x1b[K");
                    let _ = err.flush();
                    shown = true;
                }
            }
        }
    };
    if shown {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
    result.map(|(replies, ended)| Waited {
        at_most: ended && replies.is_empty(),
        replies,
        progressed,
    })
}
