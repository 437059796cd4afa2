//! [`KvStore`]: the versioned key/value map, a persistent B-tree whose clone is O(1) so a
//! snapshot can be serialized beside the apply loop.

use bytes::Bytes;
use imbl::OrdMap;

use crate::command::{Op, Reply};

/// A stored value and its version (starting at 1 when created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: Bytes,
    /// How many times the key was written since it was created.
    pub version: u64,
}

/// The versioned map. Cloning is O(1) and shares structure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvStore {
    map: OrdMap<Bytes, Versioned>,
    bytes: u64,
}

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

    /// Inserts an entry as restored from a snapshot.
    pub(crate) fn restore_entry(&mut self, key: Bytes, value: Versioned) {
        self.bytes += (key.len() + value.value.len()) as u64;
        if let Some(old) = self.map.insert(key.clone(), value) {
            self.bytes -= (key.len() + old.value.len()) as u64;
        }
    }

    /// Applies one operation and returns its reply.
    pub fn apply(&mut self, op: &Op) -> Reply {
        match op {
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
            Op::Delete { key } => match self.map.remove(key) {
                Some(old) => {
                    self.bytes -= (key.len() + old.value.len()) as u64;
                    Reply::Deleted { existed: true }
                }
                None => Reply::Deleted { existed: false },
            },
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
