//! RSM tests against a fake Raft that commits every proposal at once (or never).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use raftkv_storage::{Entry, MemoryPersister, Persister, SnapshotMeta, WriteBatch, codec};

use super::*;

/// How the fake treats proposals.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Append, persist and apply at once (before `propose` returns).
    Commit,
    /// Accept but never commit.
    Stall,
    /// Apply someone else's command at the proposed index.
    Overwrite,
}

struct FakeRaft {
    persister: MemoryPersister,
    tx: Mutex<Option<Sender<ApplyMsg>>>,
    last: AtomicU64,
    leader: AtomicBool,
    mode: Mutex<Mode>,
    /// Serializes proposals, as a Raft leader's log does.
    log_lock: Mutex<()>,
    /// Reports leadership changes through `watch_leadership` (else the RSM polls).
    watchable: bool,
    watcher: Mutex<Option<LeadershipWatcher>>,
    /// Calls of `leadership()` (polls).
    polls: AtomicU64,
}

const TERM: u64 = 1;

impl FakeRaft {
    fn new(persister: MemoryPersister, mode: Mode) -> (Arc<Self>, Receiver<ApplyMsg>) {
        let (tx, rx) = channel();
        let last = persister.recover().expect("recover").last_index();
        let raft = Arc::new(Self {
            persister,
            tx: Mutex::new(Some(tx)),
            last: AtomicU64::new(last),
            leader: AtomicBool::new(true),
            mode: Mutex::new(mode),
            log_lock: Mutex::new(()),
            watchable: false,
            watcher: Mutex::new(None),
            polls: AtomicU64::new(0),
        });
        (raft, rx)
    }

    /// A fake that reports leadership changes (see [`depose`](Self::depose)).
    fn watched(mode: Mode) -> (Arc<Self>, Receiver<ApplyMsg>) {
        let (raft, rx) = Self::new(MemoryPersister::new(), mode);
        let mut raft = Arc::into_inner(raft).expect("sole owner");
        raft.watchable = true;
        (Arc::new(raft), rx)
    }

    /// Reports the end of the leadership to the watcher, without changing what
    /// `leadership()` says (so only the report can fail waiters).
    fn depose(&self) {
        if let Some(w) = self.watcher.lock().as_mut() {
            w(Leadership {
                term: TERM + 1,
                is_leader: false,
                leader: Some(2),
            });
        }
    }

    fn close(&self) {
        self.tx.lock().take();
    }
}

impl RaftHandle for FakeRaft {
    fn propose(&self, data: Vec<u8>) -> Result<(u64, u64), KvError> {
        if !self.leader.load(Ordering::SeqCst) {
            return Err(KvError::WrongLeader { leader_hint: None });
        }
        let _log = self.log_lock.lock();
        let index = self.last.fetch_add(1, Ordering::SeqCst) + 1;
        let mode = *self.mode.lock();
        let data = match mode {
            Mode::Stall => return Ok((index, TERM)),
            Mode::Commit => data,
            Mode::Overwrite => codec::encode(&Command {
                client_id: 999,
                seq: index,
                ts_ms: 0,
                op: Op::Delete {
                    key: Bytes::from_static(b"other"),
                },
            })
            .expect("encode"),
        };
        self.persister
            .write(&WriteBatch::new().append([Entry {
                index,
                term: TERM,
                data: data.clone(),
            }]))
            .expect("persist");
        if let Some(tx) = self.tx.lock().as_ref() {
            let _ = tx.send(ApplyMsg::Command {
                index,
                term: TERM,
                data,
            });
        }
        Ok((index, TERM))
    }

    fn read_index(&self, _timeout: Duration) -> Result<u64, KvError> {
        Ok(self.last.load(Ordering::SeqCst))
    }

    fn watch_leadership(&self, mut watcher: LeadershipWatcher) -> bool {
        if !self.watchable {
            return false;
        }
        watcher(Leadership {
            term: TERM,
            is_leader: true,
            leader: Some(1),
        });
        *self.watcher.lock() = Some(watcher);
        true
    }

    fn leadership(&self) -> Leadership {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let is_leader = self.leader.load(Ordering::SeqCst);
        Leadership {
            term: TERM,
            is_leader,
            leader: is_leader.then_some(1),
        }
    }

    fn snapshot_taken(&self, _meta: SnapshotMeta) {}
}

fn put(client: u64, seq: u64, key: &str, value: &str) -> Command {
    Command {
        client_id: client,
        seq,
        ts_ms: now_ms(),
        op: Op::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
        },
    }
}

fn start(raft: &Arc<FakeRaft>, rx: Receiver<ApplyMsg>, config: RsmConfig) -> Rsm {
    let persister: Arc<dyn Persister> = Arc::new(raft.persister.clone());
    Rsm::start(
        Arc::clone(raft) as Arc<dyn RaftHandle>,
        rx,
        persister,
        config,
    )
    .expect("start")
}

#[test]
fn submit_applies_once_and_reads_see_it() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Commit);
    let rsm = start(&raft, rx, RsmConfig::default());
    assert_eq!(
        rsm.submit(put(7, 1, "k", "v1")).expect("put"),
        Reply::Written { version: 1 }
    );
    // A retry of the same request (lost reply) is answered from the dedup table.
    assert_eq!(
        rsm.submit(put(7, 1, "k", "v1")).expect("retry"),
        Reply::Written { version: 1 }
    );
    assert_eq!(
        rsm.read(Bytes::from_static(b"k"), 7, 2).expect("read"),
        Reply::Value {
            value: Some(Bytes::from_static(b"v1")),
            version: 1
        }
    );
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn concurrent_submits_all_answered_without_leaks() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Commit);
    let rsm = Arc::new(start(&raft, rx, RsmConfig::default()));
    let threads: Vec<_> = (1..=8u64)
        .map(|client| {
            let rsm = Arc::clone(&rsm);
            std::thread::spawn(move || {
                for seq in 1..=50 {
                    let r = rsm.submit(put(client, seq, "shared", "x")).expect("submit");
                    assert!(matches!(r, Reply::Written { .. }), "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let version = rsm.with_state(|sm| sm.store().get(b"shared").map(|v| v.version));
    assert_eq!(version, Some(400), "every put applied exactly once");
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn lost_leadership_fails_fast_and_timeout_leaves_nothing() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Stall);
    let config = RsmConfig {
        commit_timeout: Duration::from_millis(200),
        ..RsmConfig::default()
    };
    let rsm = Arc::new(start(&raft, rx, config));
    let e = rsm.submit(put(1, 1, "k", "v")).expect_err("never commits");
    assert!(matches!(e, KvError::Timeout { .. }), "{e}");
    assert_eq!(rsm.pending_waiters(), 0);

    let waiter = {
        let rsm = Arc::clone(&rsm);
        std::thread::spawn(move || rsm.submit(put(1, 2, "k", "v")))
    };
    // Wait until the proposal is in, then depose the leader.
    while raft.last.load(Ordering::SeqCst) < 2 {
        std::thread::yield_now();
    }
    raft.leader.store(false, Ordering::SeqCst);
    let e = waiter.join().expect("join").expect_err("deposed");
    assert!(matches!(e, KvError::WrongLeader { .. }), "{e}");
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn another_command_at_the_index_fails_the_caller() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Overwrite);
    let rsm = start(&raft, rx, RsmConfig::default());
    let e = rsm.submit(put(1, 1, "k", "v")).expect_err("overwritten");
    assert!(matches!(e, KvError::WrongLeader { .. }), "{e}");
    assert!(rsm.with_state(|sm| sm.store().get(b"k").is_none()));
    raft.close();
    rsm.shutdown();
}

#[test]
fn snapshots_bound_the_raft_state_and_restore_on_restart() {
    let persister = MemoryPersister::new();
    let (raft, rx) = FakeRaft::new(persister.clone(), Mode::Commit);
    let config = RsmConfig {
        max_raft_state: 1000,
        ..RsmConfig::default()
    };
    let rsm = start(&raft, rx, config.clone());
    for seq in 1..=300u64 {
        rsm.submit(put(5, seq, &format!("k{}", seq % 10), &format!("v{seq}")))
            .expect("put");
        assert!(
            persister.raft_state_size() <= 8 * 1000,
            "raft state {} exceeds 8 x max_raft_state",
            persister.raft_state_size()
        );
    }
    raft.close();
    rsm.shutdown();
    let stats = rsm.snapshot_stats();
    assert!(stats.taken > 0, "{stats:?}");
    assert!(persister.snapshot_size() > 0);

    // Restart on a crash image: restore the snapshot, then replay the log after it.
    let image = persister.crash_image();
    let recovered = image.recover().expect("recover");
    let (raft2, rx2) = FakeRaft::new(image, Mode::Commit);
    let rsm2 = start(&raft2, rx2, config);
    rsm2.wait_loaded(Duration::from_secs(30))
        .expect("the snapshot restores");
    assert_eq!(
        rsm2.applied_index(),
        recovered.snapshot.map_or(0, |s| s.index)
    );
    for e in recovered.entries {
        raft2
            .tx
            .lock()
            .as_ref()
            .expect("open")
            .send(ApplyMsg::Command {
                index: e.index,
                term: e.term,
                data: e.data,
            })
            .expect("send");
    }
    rsm2.wait_applied(300, Duration::from_secs(10))
        .expect("replayed");
    for k in 0..10u64 {
        let want = rsm.with_state(|sm| sm.store().get(format!("k{k}").as_bytes()).cloned());
        let got = rsm2.with_state(|sm| sm.store().get(format!("k{k}").as_bytes()).cloned());
        assert_eq!(got, want, "key k{k} after restart");
    }
    // The dedup table survived too: the last request is answered, not re-applied.
    assert_eq!(
        rsm2.submit(put(5, 300, "k0", "v300")).expect("retry"),
        Reply::Written { version: 30 }
    );
    raft2.close();
    rsm2.shutdown();
}

#[test]
fn submit_many_applies_in_order_and_answers_each() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Commit);
    let rsm = start(&raft, rx, RsmConfig::default());
    let cmds: Vec<Command> = (1..=20u64)
        .map(|seq| put(3, seq, "k", &format!("v{seq}")))
        .collect();
    let results = rsm.submit_many(cmds.clone());
    assert_eq!(results.len(), 20);
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(
            r.expect("applied"),
            Reply::Written {
                version: i as u64 + 1
            }
        );
    }
    // The session's last write is answered from the dedup table, not re-applied.
    let again = rsm.submit_many(vec![cmds[19].clone()]);
    assert!(matches!(again[0], Ok(Reply::Written { version: 20 })));
    assert_eq!(
        rsm.with_state(|sm| sm.store().get(b"k").map(|v| v.version)),
        Some(20)
    );
    assert!(rsm.submit_many(Vec::new()).is_empty());
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn submit_many_fails_an_oversized_command_alone_and_the_rest_on_timeout() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Commit);
    let config = RsmConfig {
        max_command_bytes: 100,
        ..RsmConfig::default()
    };
    let rsm = start(&raft, rx, config);
    let results = rsm.submit_many(vec![
        put(4, 1, "a", "1"),
        put(4, 2, "b", &"x".repeat(200)),
        put(4, 3, "c", "3"),
    ]);
    assert!(matches!(results[0], Ok(Reply::Written { version: 1 })));
    assert!(matches!(results[1], Err(KvError::TooLarge { .. })));
    assert!(matches!(results[2], Ok(Reply::Written { version: 1 })));
    raft.close();
    rsm.shutdown();

    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Stall);
    let config = RsmConfig {
        commit_timeout: Duration::from_millis(100),
        ..RsmConfig::default()
    };
    let rsm = start(&raft, rx, config);
    let results = rsm.submit_many(vec![put(4, 1, "a", "1"), put(4, 2, "b", "2")]);
    for r in results {
        assert!(matches!(r, Err(KvError::Timeout { .. })), "{r:?}");
    }
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn read_view_sees_every_earlier_write_in_both_read_modes() {
    for mode in [ReadMode::ReadIndex, ReadMode::Log] {
        let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Commit);
        let config = RsmConfig {
            read_mode: mode,
            ..RsmConfig::default()
        };
        let rsm = start(&raft, rx, config);
        for seq in 1..=3u64 {
            rsm.submit(put(8, seq, &format!("k{seq}"), "v"))
                .expect("put");
        }
        let (keys, reply) = rsm
            .read_view(|sm| {
                (
                    sm.store().len(),
                    sm.query(&Op::CountExisting {
                        keys: vec![Bytes::from_static(b"k1"), Bytes::from_static(b"nope")],
                    }),
                )
            })
            .expect("read");
        assert_eq!(keys, 3, "{mode:?}");
        assert_eq!(reply, Some(Reply::Count { count: 1 }), "{mode:?}");
        assert_eq!(rsm.pending_waiters(), 0);
        raft.leader.store(false, Ordering::SeqCst);
        if mode == ReadMode::Log {
            assert!(matches!(
                rsm.read_view(|_| ()),
                Err(KvError::WrongLeader { .. })
            ));
        }
        raft.close();
        rsm.shutdown();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn async_submit_and_read_in_both_read_modes() {
    for mode in [ReadMode::ReadIndex, ReadMode::Log] {
        let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Commit);
        let config = RsmConfig {
            read_mode: mode,
            ..RsmConfig::default()
        };
        let rsm = start(&raft, rx, config);
        runtime().block_on(async {
            let results = rsm
                .submit_many_async(vec![put(9, 1, "a", "1"), put(9, 2, "a", "2")])
                .await;
            assert!(matches!(results[0], Ok(Reply::Written { version: 1 })));
            assert!(matches!(results[1], Ok(Reply::Written { version: 2 })));
            // A retry is answered from the dedup table.
            assert!(matches!(
                rsm.submit_async(put(9, 2, "a", "2")).await,
                Ok(Reply::Written { version: 2 })
            ));
            let got = rsm
                .read_async(Bytes::from_static(b"a"), 9, 3)
                .await
                .expect("read");
            assert_eq!(
                got,
                Reply::Value {
                    value: Some(Bytes::from_static(b"2")),
                    version: 2
                },
                "{mode:?}"
            );
            let n = rsm
                .read_view_async(|sm| sm.store().len())
                .await
                .expect("read");
            assert_eq!(n, 1);
        });
        assert_eq!(rsm.pending_waiters(), 0, "{mode:?}");
        raft.close();
        rsm.shutdown();
    }
}

#[test]
fn async_waiter_fails_when_another_command_takes_its_index() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Overwrite);
    let rsm = start(&raft, rx, RsmConfig::default());
    let results =
        runtime().block_on(rsm.submit_many_async(vec![put(1, 1, "k", "v"), put(1, 2, "k", "w")]));
    for r in results {
        assert!(matches!(r, Err(KvError::WrongLeader { .. })), "{r:?}");
    }
    assert!(rsm.with_state(|sm| sm.store().get(b"k").is_none()));
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn shutdown_fails_async_waiters_at_once() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Stall);
    let config = RsmConfig {
        commit_timeout: Duration::from_secs(60),
        ..RsmConfig::default()
    };
    let rsm = Arc::new(start(&raft, rx, config));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let write = {
        let rsm = Arc::clone(&rsm);
        rt.spawn(async move { rsm.submit_async(put(1, 1, "k", "v")).await })
    };
    while raft.last.load(Ordering::SeqCst) < 1 {
        std::thread::yield_now();
    }
    // The fake's read index is its last index, which never applies in Stall mode.
    let read = {
        let rsm = Arc::clone(&rsm);
        rt.spawn(async move { rsm.read_view_async(|_| ()).await })
    };
    while rsm.pending_waiters() < 2 {
        std::thread::yield_now();
    }
    let started = std::time::Instant::now();
    raft.close();
    rsm.shutdown();
    let write = rt.block_on(write).expect("join");
    let read = rt.block_on(read).expect("join");
    assert!(matches!(write, Err(KvError::Shutdown)), "{write:?}");
    assert!(matches!(read, Err(KvError::Shutdown)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(rsm.pending_waiters(), 0);
    // After shutdown, new calls fail at once.
    assert!(matches!(
        rt.block_on(rsm.submit_async(put(1, 2, "k", "v"))),
        Err(KvError::Shutdown)
    ));
}

#[test]
fn reported_leadership_loss_fails_waiters_without_polling() {
    let (raft, rx) = FakeRaft::watched(Mode::Stall);
    let config = RsmConfig {
        commit_timeout: Duration::from_secs(60),
        ..RsmConfig::default()
    };
    let rsm = Arc::new(start(&raft, rx, config));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let waiter = {
        let rsm = Arc::clone(&rsm);
        rt.spawn(async move {
            rsm.submit_many_async(vec![put(1, 1, "k", "v"), put(1, 2, "k", "v")])
                .await
        })
    };
    let blocking = {
        let rsm = Arc::clone(&rsm);
        std::thread::spawn(move || rsm.submit(put(2, 1, "k", "v")))
    };
    while rsm.pending_waiters() < 3 {
        std::thread::yield_now();
    }
    // Longer than the poll period: nothing fails while the leadership holds.
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(rsm.pending_waiters(), 3);
    let started = std::time::Instant::now();
    raft.depose();
    for r in rt.block_on(waiter).expect("join") {
        assert!(
            matches!(
                r,
                Err(KvError::WrongLeader {
                    leader_hint: Some(2)
                })
            ),
            "{r:?}"
        );
    }
    let r = blocking.join().expect("join");
    assert!(matches!(r, Err(KvError::WrongLeader { .. })), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(raft.polls.load(Ordering::SeqCst), 0, "never polled");
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn a_dropped_async_call_leaves_nothing_behind() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Stall);
    let rsm = start(&raft, rx, RsmConfig::default());
    let rt = runtime();
    rt.block_on(async {
        let write = rsm.submit_many_async(vec![put(1, 1, "k", "v"), put(1, 2, "k", "v")]);
        let read = rsm.read_view_async(|_| ());
        // Biased: the write proposes first, so the read's index is one that never applies.
        tokio::select! {
            biased;
            _ = write => panic!("stalled"),
            _ = read => panic!("stalled"),
            () = tokio::time::sleep(Duration::from_millis(30)) => {}
        }
    });
    assert_eq!(rsm.pending_waiters(), 0);
    // A timed-out async call leaves nothing either.
    let config = RsmConfig {
        commit_timeout: Duration::from_millis(50),
        ..RsmConfig::default()
    };
    raft.close();
    rsm.shutdown();
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Stall);
    let rsm = start(&raft, rx, config);
    rt.block_on(async {
        assert!(matches!(
            rsm.submit_async(put(1, 1, "k", "v")).await,
            Err(KvError::Timeout { .. })
        ));
        assert!(matches!(
            rsm.read_view_async(|_| ()).await,
            Err(KvError::Timeout { .. })
        ));
    });
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn polled_leadership_loss_fails_async_waiters() {
    let (raft, rx) = FakeRaft::new(MemoryPersister::new(), Mode::Stall);
    let config = RsmConfig {
        commit_timeout: Duration::from_secs(60),
        ..RsmConfig::default()
    };
    let rsm = Arc::new(start(&raft, rx, config));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let waiter = {
        let rsm = Arc::clone(&rsm);
        rt.spawn(async move { rsm.submit_async(put(1, 1, "k", "v")).await })
    };
    while rsm.pending_waiters() < 1 {
        std::thread::yield_now();
    }
    raft.leader.store(false, Ordering::SeqCst);
    let r = rt.block_on(waiter).expect("join");
    assert!(matches!(r, Err(KvError::WrongLeader { .. })), "{r:?}");
    assert_eq!(rsm.pending_waiters(), 0);
    raft.close();
    rsm.shutdown();
}

#[test]
fn an_undecodable_snapshot_fails_loading_by_name_and_never_reports_ready() {
    let persister = MemoryPersister::new();
    let meta = SnapshotMeta { index: 7, term: 2 };
    let mut w = persister.begin_snapshot(meta).expect("begin");
    std::io::Write::write_all(&mut w, b"not a kv snapshot payload").expect("write");
    w.commit().expect("commit");
    let (raft, rx) = FakeRaft::new(persister, Mode::Commit);
    let rsm = start(&raft, rx, RsmConfig::default());
    let e = rsm
        .wait_loaded(Duration::from_secs(30))
        .expect_err("an undecodable snapshot never loads");
    assert!(
        e.to_string().contains("restore kv snapshot at index 7"),
        "{e}"
    );
    let status = rsm.load_progress().status();
    assert_eq!(status.phase, crate::load_progress::LoadPhase::Failed);
    assert!(!rsm.load_progress().is_loading());
    // Callers are not left waiting on a state that will never be loaded.
    assert!(matches!(
        rsm.submit(put(1, 1, "k", "v")),
        Err(KvError::Shutdown)
    ));
    drop(raft);
    rsm.shutdown();
}
