//! `requirepass` and `AUTH` end to end: a one-member cluster behind a `RespServer` with
//! a password, spoken to over raw RESP. Checks Redis's replies before, during and
//! after authentication, and the pre-authentication request limits.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raftkv_kvservice::cluster::{ClusterConfig, ClusterStorage, LocalCluster};
use raftkv_kvservice::resp::Value;
use raftkv_kvservice::server::{Password, RespServer, ServerConfig};
use support::resp_client::{RespClient, encode_request as req, field, hello_reply};

const WAIT: Duration = Duration::from_secs(20);

struct Fixture {
    cluster: Arc<LocalCluster>,
    _runtime: tokio::runtime::Runtime,
    server: RespServer,
}

impl Fixture {
    fn start(password: Option<&str>) -> Fixture {
        let cluster = Arc::new(
            LocalCluster::start(ClusterConfig::new(1, ClusterStorage::Memory)).expect("start"),
        );
        let leader = cluster.wait_ready(WAIT).expect("leader");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.requirepass = password.and_then(Password::new);
        let server = RespServer::start(
            config,
            cluster.replica(leader).expect("member"),
            None,
            runtime.handle(),
        )
        .expect("server");
        Fixture {
            cluster,
            _runtime: runtime,
            server,
        }
    }

    fn client(&self) -> RespClient {
        RespClient::connect(self.server.local_addr())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.shutdown();
        self.cluster.shutdown();
    }
}

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

#[test]
fn commands_before_auth_are_refused_and_a_wrong_password_changes_nothing() {
    let f = Fixture::start(Some("s3cret"));
    let mut c = f.client();
    c.expect(&[b"PING"], NOAUTH);
    c.expect(&[b"SET", b"k", b"v"], NOAUTH);
    c.expect(&[b"GET", b"k"], NOAUTH);
    c.expect(&[b"AUTH", b"wrong"], WRONGPASS);
    c.expect(&[b"AUTH", b"admin", b"s3cret"], WRONGPASS);
    c.expect(&[b"GET", b"k"], NOAUTH);
    c.expect(&[b"AUTH", b"a", b"b", b"c"], "-ERR syntax error\r\n");
    c.expect(&[b"AUTH", b"s3cret"], "+OK\r\n");
    c.expect(&[b"SET", b"k", b"v"], "+OK\r\n");
    c.expect(&[b"GET", b"k"], "$1\r\nv\r\n");
    // A failed AUTH on an authenticated connection leaves it authenticated (Redis 6+).
    c.expect(&[b"AUTH", b"nope"], WRONGPASS);
    c.expect(&[b"GET", b"k"], "$1\r\nv\r\n");

    // The user name form, and QUIT before authenticating.
    let mut d = f.client();
    d.expect(&[b"AUTH", b"default", b"s3cret"], "+OK\r\n");
    d.expect(&[b"GET", b"k"], "$1\r\nv\r\n");
    let mut e = f.client();
    e.expect(&[b"QUIT"], "+OK\r\n");
    assert_eq!(e.rest(), "", "closed after QUIT");
}

#[test]
fn a_pipeline_authenticates_then_runs_with_full_limits() {
    let f = Fixture::start(Some("pw"));
    let mut c = f.client();
    // The value is larger than the pre-auth argument limit, but arrives after AUTH.
    let big = vec![b'x'; 64 << 10];
    let mut pipeline = req(&[b"GET", b"k"]);
    pipeline.extend(req(&[b"AUTH", b"pw"]));
    pipeline.extend(req(&[b"SET", b"k", &big]));
    pipeline.extend(req(&[b"STRLEN-IS-UNKNOWN", b"k"]));
    pipeline.extend(req(&[b"MGET", b"k", b"missing"]));
    c.send(&pipeline);
    assert_eq!(c.read_raw(), NOAUTH);
    assert_eq!(c.read_raw(), "+OK\r\n");
    assert_eq!(c.read_raw(), "+OK\r\n");
    let unknown = "-ERR unknown command 'STRLEN-IS-UNKNOWN', with args beginning with: 'k' \r\n";
    assert_eq!(c.read_raw(), unknown);
    let mget = format!(
        "*2\r\n${}\r\n{}\r\n$-1\r\n",
        big.len(),
        "x".repeat(big.len())
    );
    assert_eq!(c.read_raw(), mget);
}

#[test]
fn oversized_requests_before_auth_close_the_connection() {
    let f = Fixture::start(Some("pw"));
    // Too many arguments.
    let mut c = f.client();
    let args: Vec<&[u8]> = std::iter::repeat_n(&b"a"[..], 11).collect();
    c.stream.write_all(&req(&args)).expect("send");
    let rest = c.rest();
    assert!(
        rest.starts_with("-ERR Protocol error:") && rest.contains("before AUTH"),
        "{rest}"
    );
    // An argument over 16 KiB: refused at its header, before the payload is read.
    let mut d = f.client();
    d.stream
        .write_all(b"*2\r\n$4\r\nAUTH\r\n$100000\r\n")
        .expect("send");
    let rest = d.rest();
    assert!(
        rest.starts_with("-ERR Protocol error:") && rest.contains("before AUTH"),
        "{rest}"
    );
    // The server still serves others.
    let mut e = f.client();
    e.expect(&[b"AUTH", b"pw"], "+OK\r\n");
    e.expect(&[b"PING"], "+PONG\r\n");
}

#[test]
fn without_a_password_auth_is_an_error_and_nothing_is_required() {
    let f = Fixture::start(None);
    let mut c = f.client();
    c.expect(&[b"PING"], "+PONG\r\n");
    let reply = "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n";
    c.expect(&[b"AUTH", b"x"], reply);
    c.expect(&[b"SET", b"k", b"v"], "+OK\r\n");
}

#[test]
fn hello_authenticates_or_is_refused_before_auth() {
    let f = Fixture::start(Some("s3cret"));
    let mut c = f.client();
    let noauth_hello = "-NOAUTH HELLO must be called with the client already authenticated, \
                        otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                        authenticate the client and select the RESP protocol version at the \
                        same time\r\n";
    c.expect(&[b"HELLO"], noauth_hello);
    c.expect(&[b"HELLO", b"3"], noauth_hello);
    c.expect(&[b"HELLO", b"3", b"SETNAME", b"x"], noauth_hello);
    c.expect(&[b"HELLO", b"3", b"AUTH", b"default", b"wrong"], WRONGPASS);
    c.expect(&[b"HELLO", b"3", b"AUTH", b"admin", b"s3cret"], WRONGPASS);
    c.expect(
        &[b"HELLO", b"9", b"AUTH", b"default", b"s3cret"],
        "-NOPROTO unsupported protocol version\r\n",
    );
    // Still unauthenticated, still RESP2.
    c.expect(&[b"GET", b"k"], NOAUTH);
    c.send(&req(&[
        b"HELLO", b"3", b"AUTH", b"default", b"s3cret", b"SETNAME", b"app",
    ]));
    let (hello, raw) = c.read_reply();
    let Some(Value::Integer(id)) = field(&hello, "id") else {
        panic!("HELLO reply: {hello:?}");
    };
    assert_eq!(
        String::from_utf8_lossy(&raw),
        hello_reply(3, id, "standalone", "master")
    );
    c.expect(&[b"GET", b"missing"], "_\r\n");
    c.expect(&[b"CLIENT", b"GETNAME"], "$3\r\napp\r\n");
    c.expect(&[b"CLIENT", b"ID"], &format!(":{id}\r\n"));
    // HELLO on an authenticated connection needs no AUTH.
    c.expect(
        &[b"HELLO", b"2"],
        &hello_reply(2, id, "standalone", "master"),
    );
}

#[test]
fn hello_auth_without_a_password_takes_the_default_user_only() {
    let f = Fixture::start(None);
    let mut c = f.client();
    c.expect(&[b"HELLO", b"2", b"AUTH", b"bob", b"x"], WRONGPASS);
    c.send(&req(&[b"HELLO", b"3", b"AUTH", b"default", b"anything"]));
    let (hello, _) = c.read_reply();
    assert_eq!(field(&hello, "proto"), Some(Value::Integer(3)), "{hello:?}");
    c.expect(&[b"AUTH", b"default", b"whatever"], "+OK\r\n");
}
