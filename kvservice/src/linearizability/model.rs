//! Sequential specifications: the [`Model`] trait and the versioned KV model.

use std::fmt::Write as _;
use std::hash::Hash;

use super::history::Operation;
use super::partition::partition_by_key;

/// The sequential specification of an object: what each operation does to its state, and
/// which answers it can give.
///
/// The checker looks for an order of the operations, consistent with real time, in which
/// every operation, applied with [`step`](Model::step) from [`init`](Model::init), accepts
/// its recorded output.
pub trait Model {
    /// The state of the object. It is cached with the set of operations linearized so
    /// far, so it should be small and cheap to clone, hash and compare.
    type State: Clone + Eq + Hash;
    /// What a client asks.
    type Input;
    /// What a client is answered.
    type Output;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state` if `output` is a possible answer to it there: the new
    /// state, or `None` if the object, in `state`, cannot answer `input` with `output`.
    ///
    /// The step is deterministic. An operation whose outcome the client never learned
    /// (`ret` = [`UNKNOWN_RETURN`](super::UNKNOWN_RETURN)) should have an output accepted
    /// in every state: it may be linearized at any time after its call, including after
    /// every other operation, which is how “it never took effect” is represented.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Splits `history` into parts that are linearizable independently (each part lists
    /// indices into `history`; together they should list every index once). A part
    /// starts from [`init`](Model::init). The default is one part holding everything.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// A one-line description of an operation, for diagnostics.
    fn describe_operation(&self, input: &Self::Input, output: &Self::Output) -> String {
        let _ = (input, output);
        String::from("<operation>")
    }

    /// A one-line description of a state, for diagnostics.
    fn describe_state(&self, state: &Self::State) -> String {
        let _ = state;
        String::from("<state>")
    }
}

/// An operation of the versioned KV store (the contract of the MIT 6.5840 KV labs), plus
/// the unconditional writes of the Redis interface.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read `key`. Answers [`KvOutput::Value`], or [`KvOutput::ErrNoKey`] if the key is
    /// absent.
    Get {
        /// The key read.
        key: Vec<u8>,
    },
    /// Conditional write: store `value` under `key` if the key's version is `version`
    /// (0 for an absent key, which creates it).
    ///
    /// * version matches: the value is stored, the version becomes `version + 1`;
    ///   answers [`KvOutput::Ok`];
    /// * the key is present with another version: nothing changes; answers
    ///   [`KvOutput::ErrVersion`];
    /// * the key is absent and `version > 0`: nothing changes; answers
    ///   [`KvOutput::ErrNoKey`];
    /// * [`KvOutput::ErrMaybe`] (a retry was answered `ErrVersion` after an earlier
    ///   attempt may have applied) is accepted either way: applied if the version matched
    ///   at the linearization point, unchanged if it did not. This is exact: had the
    ///   first attempt applied, the version matched then; had it not, the retry saw a
    ///   mismatch, and either instant lies within the operation's interval.
    /// * [`KvOutput::Unknown`] is accepted either way, like `ErrMaybe`.
    Put {
        /// The key written.
        key: Vec<u8>,
        /// The value stored if the version matches.
        value: Vec<u8>,
        /// The version the key must have (0: the key must be absent).
        version: u64,
    },
    /// Unconditional write (Redis `SET`): store `value` under `key`; the version becomes
    /// the key's version + 1 (1 for an absent key). Answers [`KvOutput::Ok`] (or
    /// [`KvOutput::Unknown`]).
    Set {
        /// The key written.
        key: Vec<u8>,
        /// The value stored.
        value: Vec<u8>,
    },
    /// Remove `key` (Redis `DEL`). Afterwards the key is absent, which is version 0: its
    /// version history restarts, so a `Put` with version 0 recreates it (at version 1),
    /// and a `Put` with a version the key had before the delete is answered `ErrNoKey`
    /// (or `ErrVersion` once it was recreated) unless the new life reached that version
    /// again. Answers [`KvOutput::Deleted`] (whether the key existed), or
    /// [`KvOutput::Ok`] if the interface does not say; deleting an absent key is allowed
    /// and changes nothing.
    Delete {
        /// The key removed.
        key: Vec<u8>,
    },
}

impl KvInput {
    /// `Get { key }`.
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        KvInput::Get { key: key.into() }
    }

    /// `Put { key, value, version }`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, version: u64) -> Self {
        KvInput::Put {
            key: key.into(),
            value: value.into(),
            version,
        }
    }

    /// `Set { key, value }`.
    pub fn set(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        KvInput::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Delete { key }`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        KvInput::Delete { key: key.into() }
    }

    /// The key the operation is on.
    pub fn key(&self) -> &[u8] {
        match self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Set { key, .. }
            | KvInput::Delete { key } => key,
        }
    }
}

/// An answer of the versioned KV store. See [`KvInput`] for which answers each operation
/// may give.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// `Get`: the key holds `value`, at `version` if the interface reports versions
    /// (`None` for e.g. Redis `GET`: only the value is checked).
    Value {
        /// The value read.
        value: Vec<u8>,
        /// The version read, if reported.
        version: Option<u64>,
    },
    /// `Get`: the key is absent. `Put`: the key is absent and the version was not 0.
    ErrNoKey,
    /// `Put`, `Set`: the write applied. `Delete`: done (without saying whether the key
    /// existed).
    Ok,
    /// `Put`: the key is present with another version; nothing changed.
    ErrVersion,
    /// `Put` only: the write may or may not have applied (see [`KvInput::Put`]).
    ErrMaybe,
    /// `Delete`: the key was removed (`existed`) or was already absent.
    Deleted {
        /// Whether the key was present.
        existed: bool,
    },
    /// Any operation whose outcome the client never learned; accepted in every state
    /// (a write applies if it would succeed there). Record it with
    /// `ret = `[`UNKNOWN_RETURN`](super::UNKNOWN_RETURN): it may take effect at any
    /// time after its call, or never.
    Unknown,
}

impl KvOutput {
    /// `Value { value, version: Some(version) }`.
    pub fn value(value: impl Into<Vec<u8>>, version: u64) -> Self {
        KvOutput::Value {
            value: value.into(),
            version: Some(version),
        }
    }
}

/// A present key of the [`KvModel`]: its value and version (at least 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Versioned {
    /// The value stored.
    pub value: Vec<u8>,
    /// How many writes made this value since the key was (re)created: 1 after the first.
    pub version: u64,
}

/// The versioned KV store of [`KvInput`]/[`KvOutput`], partitioned by key.
///
/// Its state is the state of **one** key (`None`: absent, i.e. version 0), so it relies on
/// its [`partition`](Model::partition), which puts every key in its own part; keys are
/// independent, so this loses nothing (linearizability is local).
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

impl Model for KvModel {
    type State = Option<Versioned>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Self::State {
        None
    }

    fn step(&self, state: &Self::State, input: &KvInput, output: &KvOutput) -> Option<Self::State> {
        let current = state.as_ref().map_or(0, |s| s.version);
        let written = |value: &Vec<u8>| {
            // A version that would overflow is not reachable by any real history.
            let version = current.checked_add(1)?;
            Some(Some(Versioned {
                value: value.clone(),
                version,
            }))
        };
        match input {
            KvInput::Get { .. } => match output {
                KvOutput::Value { value, version } => match state {
                    Some(s) if s.value == *value && version.is_none_or(|v| v == s.version) => {
                        Some(state.clone())
                    }
                    _ => None,
                },
                KvOutput::ErrNoKey => state.is_none().then_some(None),
                KvOutput::Unknown => Some(state.clone()),
                _ => None,
            },
            KvInput::Put { value, version, .. } => {
                let matches = *version == current;
                match output {
                    KvOutput::Ok if matches => written(value),
                    KvOutput::ErrVersion if !matches && state.is_some() => Some(state.clone()),
                    KvOutput::ErrNoKey if !matches && state.is_none() => Some(None),
                    KvOutput::ErrMaybe | KvOutput::Unknown => {
                        if matches {
                            written(value)
                        } else {
                            Some(state.clone())
                        }
                    }
                    _ => None,
                }
            }
            KvInput::Set { value, .. } => match output {
                KvOutput::Ok | KvOutput::Unknown => written(value),
                _ => None,
            },
            KvInput::Delete { .. } => match output {
                KvOutput::Ok | KvOutput::Unknown => Some(None),
                KvOutput::Deleted { existed } => (*existed == state.is_some()).then_some(None),
                _ => None,
            },
        }
    }

    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        partition_by_key(history, |op| op.input.key())
    }

    fn describe_operation(&self, input: &KvInput, output: &KvOutput) -> String {
        let mut s = match input {
            KvInput::Get { key } => format!("get({})", show(key)),
            KvInput::Put {
                key,
                value,
                version,
            } => format!("put({}, {}, v{version})", show(key), show(value)),
            KvInput::Set { key, value } => format!("set({}, {})", show(key), show(value)),
            KvInput::Delete { key } => format!("delete({})", show(key)),
        };
        s.push_str(" -> ");
        match output {
            KvOutput::Value {
                value,
                version: Some(v),
            } => {
                let _ = write!(s, "{} v{v}", show(value));
            }
            KvOutput::Value {
                value,
                version: None,
            } => s.push_str(&show(value)),
            KvOutput::Deleted { existed } => {
                let _ = write!(s, "Deleted(existed: {existed})");
            }
            other => {
                let _ = write!(s, "{other:?}");
            }
        }
        s
    }

    fn describe_state(&self, state: &Self::State) -> String {
        match state {
            None => String::from("absent"),
            Some(s) => format!("{} v{}", show(&s.value), s.version),
        }
    }
}

/// Bytes as a quoted string, escaping anything not printable ASCII.
fn show(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}
