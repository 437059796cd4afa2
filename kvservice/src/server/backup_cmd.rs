//! `RAFTKV.BACKUP`: the server side of `raftkv backup` (the backups themselves are
//! [`crate::backup::Backups`]).
//!
//! `START` takes the state behind a linearizable read barrier, which only the leader
//! can raise: elsewhere it answers `-NOTLEADER leader=<id> [addr=<client address>]`
//! (the address when this member knows the leader's client address), and the client
//! asks there. `CHUNK` and `DONE` go to the member that answered `START`.

use std::sync::Arc;

use super::commands::BackupCall;
use super::resp_server::Shared;
use crate::backup::{BackupError, BackupInfo};
use crate::error::KvError;
use crate::resp::encode;

/// Runs one backup step and renders its reply (blocking work on the blocking pool).
pub(crate) async fn run(shared: &Arc<Shared>, call: BackupCall) -> Vec<u8> {
    let mut out = Vec::new();
    let result: Result<Reply, String> = match call {
        BackupCall::Start => start(shared).await.map(Reply::Started),
        BackupCall::Chunk { id, offset } => {
            let shared = Arc::clone(shared);
            blocking(move || shared.backups.chunk(id, offset))
                .await
                .map(Reply::Chunk)
        }
        BackupCall::Done { id } => shared
            .backups
            .done(id)
            .map(|()| Reply::Done)
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(Reply::Started(info)) => {
            encode::write_array_header(&mut out, 6);
            encode::write_bulk(&mut out, format!("{:x}", info.id).as_bytes());
            for n in [info.bytes, info.meta.index, info.meta.term, info.keys] {
                encode::write_integer(&mut out, i64::try_from(n).unwrap_or(i64::MAX));
            }
            encode::write_integer(&mut out, i64::from(info.crc32));
        }
        Ok(Reply::Chunk(bytes)) => encode::write_bulk(&mut out, &bytes),
        Ok(Reply::Done) => encode::write_simple_string(&mut out, b"OK"),
        Err(msg) => encode::write_error(&mut out, msg.as_bytes()),
    }
    out
}

enum Reply {
    Started(BackupInfo),
    Chunk(Vec<u8>),
    Done,
}

async fn start(shared: &Arc<Shared>) -> Result<BackupInfo, String> {
    let replica = Arc::clone(shared.router.replica());
    let state = match replica.rsm().read_view_async(Clone::clone).await {
        Ok(state) => state,
        Err(KvError::WrongLeader { leader_hint }) => {
            let leader = leader_hint.or_else(|| shared.router.known_leader());
            return Err(match leader {
                Some(id) => match shared.router.client_addrs().get(&id) {
                    Some(addr) => format!("NOTLEADER leader={id} addr={addr}"),
                    None => format!("NOTLEADER leader={id}"),
                },
                None => "NOTLEADER no leader is known; try again".into(),
            });
        }
        Err(e) => return Err(format!("ERR backup: the read barrier failed: {e}")),
    };
    let shared = Arc::clone(shared);
    blocking(move || shared.backups.create(&state)).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("ERR internal error: {e}")),
    }
}
