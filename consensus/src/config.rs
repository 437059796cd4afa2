//! [`Config`]: the static parameters of one Raft node.

use serde::{Deserialize, Serialize};

use raftkv_storage::NodeId;

pub use crate::error::ConfigError;

/// The parameters of one Raft node. Time is counted in *ticks*: the runtime calls
/// [`RaftCore::tick`](crate::RaftCore::tick) at a fixed interval of its clock (10 ms
/// for the defaults below).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// This node's id (never 0).
    pub id: NodeId,
    /// All members, including `id`.
    pub voters: Vec<NodeId>,
    /// The election timeout is drawn uniformly from `[election_ticks, 2 * election_ticks)`
    /// with the seeded RNG, each time a node becomes follower or (pre-)candidate. It is
    /// also the minimum election timeout behind PreVote's lease, the CheckQuorum period
    /// and the leadership-transfer deadline.
    pub election_ticks: u32,
    /// Ticks between two leader heartbeats.
    pub heartbeat_ticks: u32,
    /// Most entries in one AppendEntries.
    pub max_append_entries: usize,
    /// Most payload bytes (sum of `Entry::data` lengths) in one AppendEntries. One entry
    /// is always sent, so this is also the largest accepted proposal.
    pub max_append_bytes: u64,
    /// Un-acknowledged AppendEntries (carrying entries) per follower in the Replicate
    /// state: the pipelining window.
    pub max_inflight_appends: usize,
    /// Run a PreVote round before a real election (Raft thesis §9.6).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum within an election
    /// timeout (Raft thesis §6.2).
    pub check_quorum: bool,
    /// A leader re-offers its snapshot to a follower that has not answered after this
    /// many ticks.
    pub snapshot_retry_ticks: u32,
}

impl Config {
    /// Default [`election_ticks`](Config::election_ticks): 300–600 ms at 10 ms a tick.
    pub const DEFAULT_ELECTION_TICKS: u32 = 30;
    /// Default [`heartbeat_ticks`](Config::heartbeat_ticks): 100 ms at 10 ms a tick.
    pub const DEFAULT_HEARTBEAT_TICKS: u32 = 10;
    /// Default [`max_append_entries`](Config::max_append_entries).
    pub const DEFAULT_MAX_APPEND_ENTRIES: usize = 1024;
    /// Default [`max_append_bytes`](Config::max_append_bytes): 1 MiB.
    pub const DEFAULT_MAX_APPEND_BYTES: u64 = 1 << 20;
    /// Default [`max_inflight_appends`](Config::max_inflight_appends).
    pub const DEFAULT_MAX_INFLIGHT_APPENDS: usize = 8;
    /// Default [`snapshot_retry_ticks`](Config::snapshot_retry_ticks): 1 s at 10 ms a tick.
    pub const DEFAULT_SNAPSHOT_RETRY_TICKS: u32 = 100;

    /// The defaults for node `id` in a cluster of `voters` (which should include `id`).
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Self {
        Self {
            id,
            voters,
            election_ticks: Self::DEFAULT_ELECTION_TICKS,
            heartbeat_ticks: Self::DEFAULT_HEARTBEAT_TICKS,
            max_append_entries: Self::DEFAULT_MAX_APPEND_ENTRIES,
            max_append_bytes: Self::DEFAULT_MAX_APPEND_BYTES,
            max_inflight_appends: Self::DEFAULT_MAX_INFLIGHT_APPENDS,
            pre_vote: true,
            check_quorum: true,
            snapshot_retry_ticks: Self::DEFAULT_SNAPSHOT_RETRY_TICKS,
        }
    }

    /// Checks the configuration: valid, distinct ids that include `id`; a heartbeat
    /// shorter than the election timeout; non-zero limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::InvalidId { id: 0 });
        }
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            if pair[0] == pair[1] {
                return Err(ConfigError::DuplicateVoter { id: pair[0] });
            }
        }
        if sorted.first() == Some(&0) {
            return Err(ConfigError::InvalidId { id: 0 });
        }
        if !sorted.contains(&self.id) {
            return Err(ConfigError::NotAVoter { id: self.id });
        }
        if self.heartbeat_ticks == 0
            || self.election_ticks <= self.heartbeat_ticks
            || self.election_ticks > u32::MAX / 2
        {
            return Err(ConfigError::InvalidTicks {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        let zero = [
            ("max_append_entries", self.max_append_entries == 0),
            ("max_append_bytes", self.max_append_bytes == 0),
            ("max_inflight_appends", self.max_inflight_appends == 0),
            ("snapshot_retry_ticks", self.snapshot_retry_ticks == 0),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(ConfigError::ZeroLimit { field });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::new(1, vec![1, 2, 3]).validate(), Ok(()));
        assert_eq!(Config::new(1, vec![1]).validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let ok = Config::new(2, vec![1, 2, 3]);
        let with = |f: fn(&mut Config)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate()
        };
        assert_eq!(with(|c| c.id = 0), Err(ConfigError::InvalidId { id: 0 }));
        assert_eq!(
            with(|c| c.voters = vec![0, 2]),
            Err(ConfigError::InvalidId { id: 0 })
        );
        assert_eq!(
            with(|c| c.voters = vec![1, 3]),
            Err(ConfigError::NotAVoter { id: 2 })
        );
        assert_eq!(
            with(|c| c.voters = vec![1, 2, 1]),
            Err(ConfigError::DuplicateVoter { id: 1 })
        );
        assert_eq!(
            with(|c| c.heartbeat_ticks = 30),
            Err(ConfigError::InvalidTicks {
                election_ticks: 30,
                heartbeat_ticks: 30
            })
        );
        assert_eq!(
            with(|c| c.heartbeat_ticks = 0),
            Err(ConfigError::InvalidTicks {
                election_ticks: 30,
                heartbeat_ticks: 0
            })
        );
        assert_eq!(
            with(|c| c.max_inflight_appends = 0),
            Err(ConfigError::ZeroLimit {
                field: "max_inflight_appends"
            })
        );
        assert_eq!(
            with(|c| c.max_append_bytes = 0),
            Err(ConfigError::ZeroLimit {
                field: "max_append_bytes"
            })
        );
    }
}
