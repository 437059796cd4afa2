//! [`Done`]: the completion a request carries to the driver thread.

use std::sync::Arc;
use std::thread;

use raftkv_storage::NodeId;

use super::error::{FatalError, NodeError};

/// Completes one request: calls its callback exactly once.
///
/// The driver calls [`complete`](Self::complete) when it has the answer. A `Done`
/// dropped without an answer — refused with the queue of a stopped node, lost when a
/// send to a stopped driver fails, or dropped while the driver thread unwinds from a
/// panic — calls the callback with [`NodeError::Stopped`] instead, on whatever thread
/// drops it. So a caller is never left waiting, whatever happens to the node.
pub(crate) struct Done<T> {
    id: NodeId,
    f: Option<Callback<T>>,
}

type Callback<T> = Box<dyn FnOnce(Result<T, NodeError>) + Send>;

impl<T> Done<T> {
    pub(crate) fn new(id: NodeId, f: impl FnOnce(Result<T, NodeError>) + Send + 'static) -> Self {
        Self {
            id,
            f: Some(Box::new(f)),
        }
    }

    /// Calls the callback with `result`.
    pub(crate) fn complete(mut self, result: Result<T, NodeError>) {
        if let Some(f) = self.f.take() {
            f(result);
        }
    }
}

impl<T> Drop for Done<T> {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            let cause = thread::panicking().then(|| Arc::new(FatalError::Panicked { id: self.id }));
            f(Err(NodeError::Stopped { id: self.id, cause }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn called_once_with_the_answer_or_with_stopped_when_dropped() {
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        Done::new(3, move |r: Result<u64, NodeError>| {
            tx.send(r).expect("send")
        })
        .complete(Ok(7));
        drop(Done::new(3, move |r: Result<u64, NodeError>| {
            tx2.send(r).expect("send");
        }));
        assert!(matches!(rx.recv(), Ok(Ok(7))));
        assert!(matches!(
            rx.recv(),
            Ok(Err(NodeError::Stopped { id: 3, cause: None }))
        ));
        assert!(rx.recv().is_err(), "exactly once each");
    }
}
