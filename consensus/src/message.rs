//! The Raft messages nodes exchange. See the protocol notes in [`crate::docs`].

use serde::{Deserialize, Serialize};

use raftkv_storage::{Entry, NodeId, SnapshotMeta};

/// One Raft message from `from` to `to`, sent in `from`'s `term` (except PreVote, see
/// [`MessageBody::PreVote`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver. A core ignores messages addressed to another id.
    pub to: NodeId,
    /// The sender's term; for a PreVote, the term the pre-candidate would campaign in;
    /// for a granted PreVoteResponse, that same term echoed.
    pub term: u64,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of Raft message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Would you vote for me in `Message::term` (the current term + 1)? Asking changes
    /// no state anywhere (Raft thesis §9.6).
    PreVote {
        /// Index of the pre-candidate's last entry.
        last_log_index: u64,
        /// Term of that entry.
        last_log_term: u64,
    },
    /// The answer to a PreVote.
    PreVoteResponse {
        /// Whether the voter would vote.
        granted: bool,
    },
    /// Vote for me in `Message::term` (Raft §5.2).
    RequestVote {
        /// Index of the candidate's last entry.
        last_log_index: u64,
        /// Term of that entry.
        last_log_term: u64,
    },
    /// The answer to a RequestVote.
    RequestVoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Entries to append after `prev_log_index` (Raft §5.3); a heartbeat when empty.
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_log_index: u64,
        /// Term of that entry.
        prev_log_term: u64,
        /// Consecutive entries starting at `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: u64,
        /// The leader's latest ReadIndex round when the message was sent, 0 for none;
        /// echoed in the response.
        read_ctx: u64,
    },
    /// The answer to an AppendEntries.
    AppendEntriesResponse {
        /// Whether the entry at `prev_log_index` matched and the entries were appended.
        success: bool,
        /// On success: the follower's log matches the leader's through this index. On
        /// rejection: the `prev_log_index` that was rejected (lets the leader discard
        /// stale rejections).
        match_index: u64,
        /// On rejection, the fast-backtracking hint: the first index of `conflict_term`
        /// in the follower's log, or the follower's last index + 1 when its log is too
        /// short (then `conflict_term` is `None`). 0 on success.
        conflict_index: u64,
        /// On rejection, the term of the follower's entry at `prev_log_index`, if it has
        /// one.
        conflict_term: Option<u64>,
        /// The `read_ctx` of the AppendEntries being answered.
        read_ctx: u64,
    },
    /// The snapshot at `meta` is durable in the receiver's persister. The receiving
    /// runtime steps this into its core only after it streamed the payload and
    /// committed it; it never travels as a plain message.
    InstallSnapshot {
        /// The snapshot's index and term.
        meta: SnapshotMeta,
    },
    /// The answer to an InstallSnapshot. In both cases the follower's log now matches
    /// the leader's through `meta.index`.
    InstallSnapshotResponse {
        /// The snapshot answered.
        meta: SnapshotMeta,
        /// `true` when it was installed; `false` when the follower had already
        /// committed past it.
        accepted: bool,
    },
    /// Start an election now, without PreVote: the leader is handing leadership over
    /// (Raft thesis §3.10).
    TimeoutNow,
}

impl MessageBody {
    /// True for requests (PreVote, RequestVote, AppendEntries, InstallSnapshot,
    /// TimeoutNow), false for responses.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Self::PreVote { .. }
                | Self::RequestVote { .. }
                | Self::AppendEntries { .. }
                | Self::InstallSnapshot { .. }
                | Self::TimeoutNow
        )
    }
}

impl Message {
    /// The size of the message in raftkv's wire encoding
    /// ([`raftkv_storage::codec`]), without allocating.
    pub fn encoded_len(&self) -> usize {
        raftkv_storage::codec::encode_into(self, &mut std::io::sink())
            .expect("a Message holds only integers, options and byte vectors: it always encodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_matches_the_codec_and_grows_with_payload() {
        let msg = |data: Vec<u8>| Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::AppendEntries {
                prev_log_index: 4,
                prev_log_term: 3,
                entries: vec![Entry {
                    index: 5,
                    term: 3,
                    data,
                }],
                leader_commit: 4,
                read_ctx: 0,
            },
        };
        let small = msg(vec![]);
        let big = msg(vec![7; 5000]);
        let encoded = raftkv_storage::codec::encode(&small).expect("encode");
        assert_eq!(small.encoded_len(), encoded.len());
        assert_eq!(big.encoded_len(), small.encoded_len() + 5000 + 2);
        let back: Message =
            raftkv_storage::codec::decode(&encoded, 1 << 20).expect("decode round trip");
        assert_eq!(back, small);
    }

    #[test]
    fn requests_and_responses() {
        assert!(MessageBody::TimeoutNow.is_request());
        assert!(!MessageBody::PreVoteResponse { granted: true }.is_request());
    }
}
