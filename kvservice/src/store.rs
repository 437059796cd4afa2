//! [`KvStore`]: the versioned key/value map, whose clone is O(1) so a snapshot can be
//! serialized beside the apply loop, and which a restore fills from the snapshot's
//! sorted entries as they come (see [`LayeredMap`]).

use bytes::Bytes;

use crate::layered_map::LayeredMap;
use crate::sorted_run::SortedRun;

use crate::command::{Op, Reply, SetCond};

/// A stored value and its version (starting at 1 when created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: Bytes,
    /// How many times the key was written since it was created.
    pub version: u64,
}

/// The versioned map. Cloning is O(1) and shares structure.
///
/// Invariant: `bytes` is the sum of the key and value lengths of the entries of `map`.
/// Two stores are equal when they hold the same entries, however they are layered.
#[derive(Debug, Clone, Default)]
pub struct KvStore {
    map: LayeredMap<Bytes, Versioned>,
    bytes: u64,
}

impl PartialEq for KvStore {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.bytes == other.bytes && self.iter().eq(other.iter())
    }
}

impl Eq for KvStore {}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True without keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of keys and values held.
    pub fn data_bytes(&self) -> u64 {
        self.bytes
    }

    /// The value and version of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.map.get(key)
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Versioned)> {
        self.map.iter()
    }

    /// A store of exactly `entries`, as restored from a snapshot, whose keys must be
    /// strictly increasing: O(1) beyond summing their sizes.
    pub(crate) fn from_sorted(entries: Vec<(Bytes, Versioned)>) -> Self {
        let bytes = entries
            .iter()
            .map(|(k, v)| (k.len() + v.value.len()) as u64)
            .sum();
        Self {
            map: LayeredMap::from_base(SortedRun::from_sorted(entries)),
            bytes,
        }
    }

    /// Answers a read-only operation (`Get`, `GetMany`, `CountExisting`, `KeyCount`)
    /// without changing anything; `None` for a write.
    pub fn query(&self, op: &Op) -> Option<Reply> {
        Some(match op {
            Op::Get { key } => match self.map.get(key) {
                Some(v) => Reply::Value {
                    value: Some(v.value.clone()),
                    version: v.version,
                },
                None => Reply::Value {
                    value: None,
                    version: 0,
                },
            },
            Op::GetMany { keys } => Reply::Values {
                values: keys
                    .iter()
                    .map(|k| self.map.get(k).map(|v| v.value.clone()))
                    .collect(),
            },
            Op::CountExisting { keys } => Reply::Count {
                count: keys.iter().filter(|k| self.map.contains_key(*k)).count() as u64,
            },
            Op::KeyCount => Reply::Count {
                count: self.map.len() as u64,
            },
            Op::Put { .. }
            | Op::PutIf { .. }
            | Op::Delete { .. }
            | Op::Set { .. }
            | Op::DeleteMany { .. }
            | Op::Batch { .. } => return None,
        })
    }

    /// Applies one operation and returns its reply.
    pub fn apply(&mut self, op: &Op) -> Reply {
        if let Some(reply) = self.query(op) {
            return reply;
        }
        match op {
            Op::Put { key, value } => {
                let version = self.map.get(key).map_or(0, |v| v.version) + 1;
                self.set(key, value, version);
                Reply::Written { version }
            }
            Op::PutIf {
                key,
                value,
                version,
            } => {
                let current = self.map.get(key).map(|v| v.version);
                match current {
                    None if *version != 0 => Reply::ErrNoKey,
                    None => {
                        self.set(key, value, 1);
                        Reply::Written { version: 1 }
                    }
                    Some(cur) if cur == *version => {
                        self.set(key, value, cur + 1);
                        Reply::Written { version: cur + 1 }
                    }
                    Some(cur) => Reply::ErrVersion { current: cur },
                }
            }
            Op::Delete { key } => Reply::Deleted {
                existed: self.remove(key),
            },
            Op::Set {
                key,
                value,
                cond,
                return_old,
            } => {
                let current = self.map.get(key);
                let old = if *return_old {
                    current.map(|v| v.value.clone())
                } else {
                    None
                };
                let current_version = current.map_or(0, |v| v.version);
                let stored = match cond {
                    SetCond::Always => true,
                    SetCond::IfAbsent => current.is_none(),
                    SetCond::IfPresent => current.is_some(),
                };
                let version = if stored {
                    self.set(key, value, current_version + 1);
                    current_version + 1
                } else {
                    current_version
                };
                Reply::SetDone {
                    stored,
                    version,
                    old,
                }
            }
            Op::DeleteMany { keys } => Reply::Count {
                count: keys.iter().filter(|k| self.remove(k)).count() as u64,
            },
            Op::Batch { ops } => Reply::Batch {
                replies: ops.iter().map(|op| self.apply(op)).collect(),
            },
            Op::Get { .. } | Op::GetMany { .. } | Op::CountExisting { .. } | Op::KeyCount => {
                unreachable!("reads are answered by query")
            }
        }
    }

    /// Removes `key`; true if it existed.
    fn remove(&mut self, key: &Bytes) -> bool {
        match self.map.remove(key) {
            Some(old) => {
                self.bytes -= (key.len() + old.value.len()) as u64;
                true
            }
            None => false,
        }
    }

    fn set(&mut self, key: &Bytes, value: &Bytes, version: u64) {
        self.bytes += (key.len() + value.len()) as u64;
        let new = Versioned {
            value: value.clone(),
            version,
        };
        if let Some(old) = self.map.insert(key.clone(), new) {
            self.bytes -= (key.len() + old.value.len()) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn lab_version_semantics() {
        let mut s = KvStore::new();
        let put_if = |k: &str, v: &str, version| Op::PutIf {
            key: b(k),
            value: b(v),
            version,
        };
        assert_eq!(s.apply(&put_if("k", "a", 1)), Reply::ErrNoKey);
        assert_eq!(s.apply(&put_if("k", "a", 0)), Reply::Written { version: 1 });
        assert_eq!(
            s.apply(&put_if("k", "b", 0)),
            Reply::ErrVersion { current: 1 }
        );
        assert_eq!(s.apply(&put_if("k", "b", 1)), Reply::Written { version: 2 });
        assert_eq!(
            s.apply(&Op::Get { key: b("k") }),
            Reply::Value {
                value: Some(b("b")),
                version: 2
            }
        );
        assert_eq!(
            s.apply(&Op::Put {
                key: b("k"),
                value: b("c")
            }),
            Reply::Written { version: 3 }
        );
        assert_eq!(s.data_bytes(), 2);
        assert_eq!(
            s.apply(&Op::Delete { key: b("k") }),
            Reply::Deleted { existed: true }
        );
        assert_eq!(s.data_bytes(), 0);
        assert_eq!(
            s.apply(&Op::Get { key: b("k") }),
            Reply::Value {
                value: None,
                version: 0
            }
        );
        assert_eq!(s.apply(&put_if("k", "d", 0)), Reply::Written { version: 1 });
    }

    fn set(k: &str, v: &str, cond: SetCond, return_old: bool) -> Op {
        Op::Set {
            key: b(k),
            value: b(v),
            cond,
            return_old,
        }
    }

    #[test]
    fn set_conditions_and_old_values() {
        let mut s = KvStore::new();
        let done = |stored, version, old: Option<&str>| Reply::SetDone {
            stored,
            version,
            old: old.map(b),
        };
        // XX on a missing key: not stored.
        assert_eq!(
            s.apply(&set("k", "a", SetCond::IfPresent, true)),
            done(false, 0, None)
        );
        assert!(s.get(b"k").is_none());
        // NX on a missing key: stored at version 1.
        assert_eq!(
            s.apply(&set("k", "a", SetCond::IfAbsent, false)),
            done(true, 1, None)
        );
        // NX on an existing key: not stored; GET still answers the old value.
        assert_eq!(
            s.apply(&set("k", "b", SetCond::IfAbsent, true)),
            done(false, 1, Some("a"))
        );
        // XX on an existing key: stored, version up.
        assert_eq!(
            s.apply(&set("k", "c", SetCond::IfPresent, true)),
            done(true, 2, Some("a"))
        );
        // Plain SET without GET answers no old value.
        assert_eq!(
            s.apply(&set("k", "dd", SetCond::Always, false)),
            done(true, 3, None)
        );
        assert_eq!(s.data_bytes(), 3);
        // A SET is a Put as far as versions go.
        assert_eq!(
            s.apply(&Op::PutIf {
                key: b("k"),
                value: b("e"),
                version: 3
            }),
            Reply::Written { version: 4 }
        );
    }

    #[test]
    fn multi_key_operations() {
        let mut s = KvStore::new();
        for k in ["a", "b", "c"] {
            s.apply(&Op::Put {
                key: b(k),
                value: b("v"),
            });
        }
        let keys = |ks: &[&str]| ks.iter().map(|k| b(k)).collect::<Vec<_>>();
        assert_eq!(
            s.apply(&Op::CountExisting {
                keys: keys(&["a", "a", "x", "c"])
            }),
            Reply::Count { count: 3 }
        );
        assert_eq!(
            s.query(&Op::GetMany {
                keys: keys(&["a", "x", "b"])
            }),
            Some(Reply::Values {
                values: vec![Some(b("v")), None, Some(b("v"))]
            })
        );
        assert_eq!(s.query(&Op::KeyCount), Some(Reply::Count { count: 3 }));
        // Duplicates are removed (and counted) once; missing keys count nothing.
        assert_eq!(
            s.apply(&Op::DeleteMany {
                keys: keys(&["a", "a", "x", "b"])
            }),
            Reply::Count { count: 2 }
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.data_bytes(), 2);
        assert_eq!(
            s.query(&Op::Delete { key: b("c") }),
            None,
            "writes are not queries"
        );
    }

    #[test]
    fn batch_applies_in_order_each_op_seeing_the_ones_before() {
        let mut s = KvStore::new();
        let reply = s.apply(&Op::Batch {
            ops: vec![
                set("k", "a", SetCond::IfAbsent, false),
                set("k", "b", SetCond::IfAbsent, true),
                Op::Get { key: b("k") },
                Op::DeleteMany { keys: vec![b("k")] },
                Op::CountExisting { keys: vec![b("k")] },
            ],
        });
        assert_eq!(
            reply,
            Reply::Batch {
                replies: vec![
                    Reply::SetDone {
                        stored: true,
                        version: 1,
                        old: None
                    },
                    Reply::SetDone {
                        stored: false,
                        version: 1,
                        old: Some(b("a"))
                    },
                    Reply::Value {
                        value: Some(b("a")),
                        version: 1
                    },
                    Reply::Count { count: 1 },
                    Reply::Count { count: 0 },
                ]
            }
        );
        assert!(s.is_empty());
    }

    #[test]
    fn clone_is_a_frozen_view() {
        let mut s = KvStore::new();
        s.apply(&Op::Put {
            key: b("a"),
            value: b("1"),
        });
        let frozen = s.clone();
        s.apply(&Op::Put {
            key: b("a"),
            value: b("2"),
        });
        assert_eq!(frozen.get(b"a").map(|v| v.value.clone()), Some(b("1")));
        assert_eq!(s.get(b"a").map(|v| v.value.clone()), Some(b("2")));
    }
}
