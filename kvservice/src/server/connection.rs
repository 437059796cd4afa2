//! [`serve`]: one client connection. It parses every complete request in its buffer,
//! runs them as one batch in order, and writes all the replies with one write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use raftkv_consensus::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::auth;
use super::backup_cmd;
use super::cluster::{CLUSTER_DISABLED, ClusterCall, ClusterView, write_cluster_reply};
use super::commands::{BackupCall, Call, ReplyKind, parse};
use super::config::Redirect;
use super::hello::{Hello, HelloReply, NOAUTH_HELLO, write_hello};
use super::info::{InfoSource, info_text};
use super::loading;
use super::reply::render;
use super::resp_server::Shared;
use super::router::{Refusal, Unit};
use super::session::Session;
use super::slot::key_slot;
use crate::command::{Op, Reply};
use crate::resp::{Protocol, Request, encode, parse_request};

/// Most bytes read from the socket at once (more while a large request arrives).
const READ_CHUNK: usize = 16 << 10;
const LARGE_READ_CHUNK: usize = 256 << 10;
/// An empty read buffer that grew past this (a large request) is given back.
const IDLE_BUFFER: usize = 64 << 10;
/// After a protocol error, how long input is drained before closing (so that the
/// error reply is not lost to a reset).
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 1 << 20;

/// Decrements the connected-clients count when the connection ends, however it ends.
pub(crate) struct ClientGuard(pub(crate) Arc<Shared>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.counters.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection closes after its current batch.
enum Stop {
    /// `QUIT` (its `+OK` is among the replies).
    Quit,
    /// Malformed or over-limit input: this error message, then close.
    Protocol(String),
}

/// Where a reply comes from, in request order. Replies rendered later keep the
/// protocol of their request's time (a `HELLO` may change it mid-batch).
enum Slot {
    Ready(Vec<u8>),
    Backup(BackupCall),
    Info(Vec<String>, Protocol),
    Kv {
        kind: ReplyKind,
        unit: usize,
        /// Its index among the unit's operations, when the unit is an `Op::Batch`.
        member: Option<usize>,
        proto: Protocol,
        /// The hash slot of its first key (0 without keys), for `-MOVED`.
        slot: u16,
    },
}

/// One replicated command being planned: a read, or a pack of consecutive writes.
enum Plan {
    Read(Op),
    Writes { ops: Vec<Op>, bytes: usize },
}

struct Connection {
    shared: Arc<Shared>,
    id: u64,
    name: Option<Bytes>,
    session: Session,
    /// False until `AUTH` succeeds, when the server requires a password.
    authenticated: bool,
    /// RESP2 until `HELLO 3`.
    proto: Protocol,
}

/// Serves one client until it quits, sends bad input, disconnects, or the server
/// shuts down.
pub(crate) async fn serve(
    mut stream: TcpStream,
    guard: ClientGuard,
    mut shutdown: watch::Receiver<bool>,
) {
    let shared = Arc::clone(&guard.0);
    let peer = stream.peer_addr().ok();
    let mut conn = Connection {
        id: shared.next_client_id.fetch_add(1, Ordering::Relaxed),
        shared: Arc::clone(&shared),
        name: None,
        session: Session::new(),
        authenticated: shared.config.requirepass.is_none(),
        proto: Protocol::Resp2,
    };
    tracing::debug!(id = conn.id, ?peer, "client connected");
    let mut buf = BytesMut::with_capacity(4 << 10);
    'conn: loop {
        loop {
            let (limits, request_limit, max_batch) = conn.limits();
            let mut requests = Vec::new();
            let mut stop = None;
            while requests.len() < max_batch {
                match parse_request(&buf, &limits) {
                    Ok(Some((request, used))) => {
                        buf.advance(used);
                        if !request.is_empty() {
                            requests.push(request);
                        }
                    }
                    Ok(None) => {
                        if buf.len() > request_limit {
                            stop = Some(Stop::Protocol(format!(
                                "ERR Protocol error: request larger than {request_limit} bytes"
                            )));
                        }
                        break;
                    }
                    Err(e) if !conn.authenticated => {
                        stop = Some(Stop::Protocol(format!(
                            "ERR Protocol error: {e} (before AUTH: at most {} arguments of {} bytes)",
                            auth::PRE_AUTH_MAX_ARGS,
                            auth::PRE_AUTH_MAX_BULK
                        )));
                        break;
                    }
                    Err(e) => {
                        stop = Some(Stop::Protocol(format!("ERR Protocol error: {e}")));
                        break;
                    }
                }
            }
            if requests.is_empty() && stop.is_none() {
                break;
            }
            let (mut out, quit) = tokio::select! {
                r = conn.run_batch(requests) => r,
                () = stopped(&mut shutdown) => break 'conn,
            };
            if quit {
                stop = Some(Stop::Quit);
            }
            if let Some(Stop::Protocol(msg)) = &stop {
                shared
                    .counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id = conn.id, ?peer, error = %msg, "protocol error; closing");
                encode::write_error(&mut out, msg.as_bytes());
            }
            if !out.is_empty() {
                let written = tokio::select! {
                    r = stream.write_all(&out) => r,
                    () = stopped(&mut shutdown) => break 'conn,
                };
                if written.is_err() {
                    break 'conn;
                }
            }
            match stop {
                None => {}
                Some(Stop::Quit) => {
                    let _ = stream.shutdown().await;
                    break 'conn;
                }
                Some(Stop::Protocol(_)) => {
                    linger(&mut stream).await;
                    break 'conn;
                }
            }
        }
        if buf.is_empty() && buf.capacity() > IDLE_BUFFER {
            buf = BytesMut::with_capacity(4 << 10);
        }
        // Read more, never letting the buffer grow past the request limit (+1 byte to
        // notice it was exceeded).
        let request_limit = conn.limits().1;
        let want = request_limit
            .saturating_add(1)
            .saturating_sub(buf.len())
            .clamp(
                1,
                if buf.len() >= READ_CHUNK {
                    LARGE_READ_CHUNK
                } else {
                    READ_CHUNK
                },
            );
        buf.reserve(want);
        let mut limited = (&mut stream).take(want as u64);
        let read = tokio::select! {
            r = limited.read_buf(&mut buf) => r,
            () = stopped(&mut shutdown) => break 'conn,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(id = conn.id, ?peer, error = %e, "read failed; closing");
                break;
            }
        }
    }
    tracing::debug!(id = conn.id, ?peer, "client disconnected");
    drop(guard);
}

/// Resolves once the server shuts down.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Half-closes, then drains what the client still sends for a moment, so that the
/// reply already written is not destroyed by a reset when the socket closes.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut scratch = vec![0u8; 16 << 10];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

impl Connection {
    /// The parser limits, the most bytes buffered for one request, and the most
    /// requests run as one batch. Until the connection authenticates, one small
    /// request at a time, so that the requests after an `AUTH` are parsed with the
    /// limits it earns.
    fn limits(&self) -> (crate::resp::Limits, usize, usize) {
        let config = &self.shared.config;
        if self.authenticated {
            (
                config.limits(),
                config.request_limit(),
                config.max_batch.max(1),
            )
        } else {
            (
                auth::pre_auth_limits(config.limits()),
                auth::PRE_AUTH_REQUEST_BYTES.min(config.request_limit()),
                1,
            )
        }
    }

    /// Runs `requests` in order; returns the replies and whether the client quit.
    async fn run_batch(&mut self, requests: Vec<Request>) -> (Vec<u8>, bool) {
        let shared = Arc::clone(&self.shared);
        let counters = &shared.counters;
        let mut slots = Vec::with_capacity(requests.len());
        let mut plans: Vec<Plan> = Vec::new();
        let mut quit = false;
        let pack_limit = self.shared.config.max_write_command_bytes;
        let loading = shared.router.replica().rsm().load_progress().is_loading();
        for request in requests {
            counters.commands.fetch_add(1, Ordering::Relaxed);
            // Before AUTH only what leads to it; while loading only what needs no data.
            let name = request.args().first().map_or(&[][..], |n| &n[..]);
            let refusal = if !self.authenticated && !auth::allowed_before_auth(name) {
                Some(auth::NOAUTH)
            } else if loading && !loading::allowed_while_loading(name) {
                Some(loading::LOADING)
            } else {
                None
            };
            if let Some(msg) = refusal {
                let mut out = Vec::new();
                encode::write_error(&mut out, msg.as_bytes());
                slots.push(Slot::Ready(out));
                continue;
            }
            match parse(request.args(), self.proto) {
                Call::Reply(bytes) => slots.push(Slot::Ready(bytes)),
                Call::Hello(hello) => slots.push(Slot::Ready(self.hello(hello))),
                Call::Cluster(call) => slots.push(Slot::Ready(self.cluster(&call))),
                Call::Backup(call) => slots.push(Slot::Backup(call)),
                Call::Quit => {
                    slots.push(Slot::Ready(b"+OK\r\n".to_vec()));
                    quit = true;
                    break;
                }
                Call::Info(sections) => slots.push(Slot::Info(sections, self.proto)),
                Call::ClientSetName(name) => {
                    self.name = Some(name).filter(|n| !n.is_empty());
                    slots.push(Slot::Ready(b"+OK\r\n".to_vec()));
                }
                Call::ClientGetName => {
                    let mut out = Vec::new();
                    match &self.name {
                        Some(name) => encode::write_bulk(&mut out, name),
                        None => encode::write_null(&mut out, self.proto),
                    }
                    slots.push(Slot::Ready(out));
                }
                Call::Auth { user, password } => {
                    let mut out = Vec::new();
                    match self.authenticate(user.as_deref(), &password) {
                        Ok(()) => encode::write_simple_string(&mut out, b"OK"),
                        Err(msg) => encode::write_error(&mut out, msg.as_bytes()),
                    }
                    slots.push(Slot::Ready(out));
                }
                Call::ClientId => {
                    let mut out = Vec::new();
                    encode::write_integer(&mut out, i64::try_from(self.id).unwrap_or(i64::MAX));
                    slots.push(Slot::Ready(out));
                }
                Call::Kv(call) if call.op.is_write() => {
                    let slot = op_slot(&call.op);
                    let size = op_bytes(&call.op);
                    let member = match plans.last_mut() {
                        Some(Plan::Writes { ops, bytes })
                            if bytes.saturating_add(size) <= pack_limit =>
                        {
                            *bytes += size;
                            ops.push(call.op);
                            ops.len() - 1
                        }
                        _ => {
                            plans.push(Plan::Writes {
                                ops: vec![call.op],
                                bytes: size,
                            });
                            0
                        }
                    };
                    slots.push(Slot::Kv {
                        kind: call.kind,
                        unit: plans.len() - 1,
                        member: Some(member),
                        proto: self.proto,
                        slot,
                    });
                }
                Call::Kv(call) => {
                    let slot = op_slot(&call.op);
                    plans.push(Plan::Read(call.op));
                    slots.push(Slot::Kv {
                        kind: call.kind,
                        unit: plans.len() - 1,
                        member: None,
                        proto: self.proto,
                        slot,
                    });
                }
            }
        }
        // A pack of one is sent as its operation alone.
        let mut batched = Vec::with_capacity(plans.len());
        let mut units: Vec<Unit> = plans
            .into_iter()
            .map(|plan| {
                let op = match plan {
                    Plan::Read(op) => op,
                    Plan::Writes { mut ops, .. } if ops.len() == 1 => ops.remove(0),
                    Plan::Writes { ops, .. } => Op::Batch { ops },
                };
                batched.push(matches!(op, Op::Batch { .. }));
                Unit::new(self.session.command(op))
            })
            .collect();
        if !units.is_empty() {
            self.shared
                .router
                .execute(&mut self.session, &mut units)
                .await;
        }
        let mut out = Vec::new();
        for slot in slots {
            match slot {
                Slot::Ready(bytes) => out.extend_from_slice(&bytes),
                Slot::Backup(call) => {
                    out.extend_from_slice(&backup_cmd::run(&self.shared, call).await);
                }
                Slot::Info(sections, proto) => {
                    // It takes the state machine's lock, which a snapshot install holds
                    // for a while: not on an async worker.
                    let shared = Arc::clone(&self.shared);
                    let text = tokio::task::spawn_blocking(move || {
                        info_text(
                            &InfoSource {
                                router: &shared.router,
                                stats: shared.counters.snapshot(),
                                uptime: shared.started.elapsed(),
                                port: shared.port,
                                cluster: shared.router.redirect() == Redirect::Moved,
                            },
                            &sections,
                        )
                    })
                    .await;
                    match text {
                        // Redis 7 answers INFO with a verbatim string in RESP3.
                        Ok(text) => {
                            encode::write_verbatim(&mut out, proto, b"txt", text.as_bytes())
                        }
                        Err(e) => encode::write_error(
                            &mut out,
                            format!("ERR internal error: {e}").as_bytes(),
                        ),
                    }
                }
                Slot::Kv {
                    kind,
                    unit,
                    member,
                    proto,
                    slot,
                } => {
                    let moved;
                    let outcome = match (&units[unit].outcome, member) {
                        (Some(Ok(Reply::Batch { replies })), Some(m)) if batched[unit] => {
                            replies.get(m).ok_or("ERR internal error: missing reply")
                        }
                        (Some(Ok(reply)), _) => Ok(reply),
                        (Some(Err(Refusal::Error(msg))), _) => Err(msg.as_str()),
                        (Some(Err(Refusal::Moved { addr })), _) => {
                            moved = format!("MOVED {slot} {addr}");
                            Err(moved.as_str())
                        }
                        (None, _) => Err("ERR internal error: no outcome"),
                    };
                    render(kind, outcome, proto, &mut out);
                }
            }
        }
        (out, quit)
    }
}

impl Connection {
    /// `AUTH` (and `HELLO ... AUTH`): checks the password; success authenticates the
    /// connection, failure leaves it as it was.
    fn authenticate(&mut self, user: Option<&[u8]>, password: &[u8]) -> Result<(), &'static str> {
        let required = self.shared.config.requirepass.as_ref().map(|p| p.expose());
        match auth::check(required, user, password) {
            Ok(()) => {
                self.authenticated = true;
                Ok(())
            }
            Err(msg) => {
                tracing::debug!(id = self.id, "AUTH refused");
                Err(msg)
            }
        }
    }

    /// Runs `HELLO`: authenticate if asked, refuse if still unauthenticated, then name
    /// the connection, switch protocol, and answer in the new protocol.
    fn hello(&mut self, hello: Hello) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some((user, password)) = &hello.auth {
            if let Err(msg) = self.authenticate(Some(user), password) {
                encode::write_error(&mut out, msg.as_bytes());
                return out;
            }
        }
        if !self.authenticated {
            encode::write_error(&mut out, NOAUTH_HELLO.as_bytes());
            return out;
        }
        if let Some(name) = hello.setname {
            self.name = Some(name).filter(|n| !n.is_empty());
        }
        if let Some(proto) = hello.protocol {
            self.proto = proto;
        }
        let leader = self.shared.router.replica().node().status().role == Role::Leader;
        write_hello(
            &mut out,
            self.proto,
            HelloReply {
                id: self.id,
                cluster: self.shared.router.redirect() == Redirect::Moved,
                leader,
            },
        );
        out
    }

    /// Runs a `CLUSTER` subcommand (MOVED mode only).
    fn cluster(&self, call: &ClusterCall) -> Vec<u8> {
        let mut out = Vec::new();
        let router = &self.shared.router;
        if router.redirect() != Redirect::Moved {
            encode::write_error(&mut out, CLUSTER_DISABLED.as_bytes());
            return out;
        }
        let replica = router.replica();
        let status = replica.node().status();
        let view = ClusterView {
            me: status.id,
            leader: status.leader,
            term: status.term,
            applied: replica.rsm().applied_index(),
            clients: router.client_addrs(),
            raft: router.peer_addrs(),
        };
        write_cluster_reply(&mut out, self.proto, &view, call);
        out
    }
}

/// The hash slot `-MOVED` names for `op`: its first key's (0 without keys).
fn op_slot(op: &Op) -> u16 {
    op.keys().first().map_or(0, |k| key_slot(k))
}

/// Roughly how many bytes an operation adds to a replicated command.
fn op_bytes(op: &Op) -> usize {
    let payload: usize = match op {
        Op::Put { key, value } | Op::PutIf { key, value, .. } | Op::Set { key, value, .. } => {
            key.len() + value.len()
        }
        other => other.keys().iter().map(Bytes::len).sum(),
    };
    payload + 16
}
