//! [`ClusterSecret`]: the key every member of a cluster shares, with which peers prove
//! to each other that they belong (see [`super::handshake`]).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use raftkv_storage::NodeId;

use crate::transport::frame::NONCE_BYTES;

/// Bytes of a handshake proof (an HMAC-SHA256 tag).
pub const PROOF_BYTES: usize = 32;

/// Which side of a handshake a proof speaks for. The two proofs of one handshake
/// differ by this label, so one side's proof can never be replayed as the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The node that opened the connection.
    Dialer,
    /// The node that accepted it.
    Acceptor,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialer => b"raftkv peer handshake v1: dialer\0",
            Side::Acceptor => b"raftkv peer handshake v1: acceptor\0",
        }
    }
}

/// What both proofs of a handshake cover: the cluster, both node ids and both nonces,
/// so a proof is bound to one connection between two named nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transcript {
    pub(crate) cluster_id: u64,
    pub(crate) dialer: NodeId,
    pub(crate) acceptor: NodeId,
    pub(crate) dialer_nonce: [u8; NONCE_BYTES],
    pub(crate) acceptor_nonce: [u8; NONCE_BYTES],
}

/// The shared cluster secret. Without one ([`ClusterSecret::none`], the default) the
/// handshake still runs, keyed by the empty key: peers are then identified but not
/// authenticated, and anyone who can reach the Raft port can speak for a member.
///
/// Its `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct ClusterSecret(Option<Arc<[u8]>>);

impl ClusterSecret {
    /// No secret: peers are not authenticated.
    pub fn none() -> Self {
        Self(None)
    }

    /// The secret `key`; an empty key is no secret.
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        if key.is_empty() {
            Self(None)
        } else {
            Self(Some(Arc::from(key)))
        }
    }

    /// Whether a secret is set.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The proof `side` gives for `transcript`.
    pub(crate) fn prove(&self, side: Side, transcript: &Transcript) -> [u8; PROOF_BYTES] {
        self.mac(side, transcript).finalize().into_bytes().into()
    }

    /// Whether `proof` is the proof `side` gives for `transcript`, compared in constant
    /// time.
    pub(crate) fn verify(&self, side: Side, transcript: &Transcript, proof: &[u8]) -> bool {
        self.mac(side, transcript).verify_slice(proof).is_ok()
    }

    fn mac(&self, side: Side, t: &Transcript) -> Hmac<Sha256> {
        let key: &[u8] = self.0.as_deref().unwrap_or(&[]);
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(side.label());
        mac.update(&t.cluster_id.to_le_bytes());
        mac.update(&t.dialer.to_le_bytes());
        mac.update(&t.acceptor.to_le_bytes());
        mac.update(&t.dialer_nonce);
        mac.update(&t.acceptor_nonce);
        mac
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() {
            "ClusterSecret(<redacted>)"
        } else {
            "ClusterSecret(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript() -> Transcript {
        Transcript {
            cluster_id: 7,
            dialer: 1,
            acceptor: 2,
            dialer_nonce: [1; NONCE_BYTES],
            acceptor_nonce: [2; NONCE_BYTES],
        }
    }

    #[test]
    fn a_proof_verifies_only_with_the_same_key_side_and_transcript() {
        let secret = ClusterSecret::new("s3cret");
        let t = transcript();
        let proof = secret.prove(Side::Dialer, &t);
        assert!(secret.verify(Side::Dialer, &t, &proof));
        assert!(!secret.verify(Side::Acceptor, &t, &proof), "sides differ");
        assert!(!ClusterSecret::new("other").verify(Side::Dialer, &t, &proof));
        assert!(!ClusterSecret::none().verify(Side::Dialer, &t, &proof));
        for change in [
            Transcript { cluster_id: 8, ..t },
            Transcript { dialer: 3, ..t },
            Transcript { acceptor: 3, ..t },
            Transcript {
                dialer_nonce: [9; NONCE_BYTES],
                ..t
            },
            Transcript {
                acceptor_nonce: [9; NONCE_BYTES],
                ..t
            },
        ] {
            assert!(!secret.verify(Side::Dialer, &change, &proof), "{change:?}");
        }
        assert!(!secret.verify(Side::Dialer, &t, &proof[..31]), "truncated");
    }

    #[test]
    fn an_empty_key_is_no_secret_and_debug_hides_the_key() {
        assert!(!ClusterSecret::new("").is_set());
        let secret = ClusterSecret::new("hunter2");
        assert!(secret.is_set());
        assert!(!format!("{secret:?}").contains("hunter2"));
        // Without a secret both sides still agree (identification, no authentication).
        let t = transcript();
        let none = ClusterSecret::none();
        assert!(none.verify(Side::Acceptor, &t, &none.prove(Side::Acceptor, &t)));
    }
}
