//! [`Session`]: a connection's client session (id and sequence numbers).

use crate::command::{ClientId, Command, Op};

/// A connection's session: a random non-zero client id and the next write sequence
/// number. A command keeps its (id, seq) across retries.
#[derive(Debug)]
pub(crate) struct Session {
    client_id: ClientId,
    next_seq: u64,
}

impl Session {
    pub(crate) fn new() -> Self {
        Self {
            client_id: new_client_id(),
            next_seq: 1,
        }
    }

    /// The command for `op` in this session (writes take the next sequence number).
    pub(crate) fn command(&mut self, op: Op) -> Command {
        Command::in_session(self.client_id, &mut self.next_seq, op)
    }

    /// Starts a new session (the old one expired on the replicas).
    pub(crate) fn renew(&mut self) {
        self.client_id = new_client_id();
        self.next_seq = 1;
    }
}

fn new_client_id() -> ClientId {
    rand::random::<u64>().max(1)
}
