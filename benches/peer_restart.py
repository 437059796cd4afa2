#!/usr/bin/env python3
"""Redis and etcd beside raftkv's snapshot and restart benches, on the same keys.

Loads N keys (default 1M) of `user:{k:010}` -> the same 100-byte values as
`benches/common/mod.rs::realistic_value` into
  * Redis, RDB only (`--save "" --appendonly no`), with `redis-cli --pipe`, then times
    `SAVE` and a restart: `kill -9`, start, until `GET` answers (not `-LOADING`);
  * etcd, one member, through its JSON gateway (`/v3/kv/txn`, 1000 puts per txn with
    `--max-txn-ops 1000` instead of the default 128, 8 connections), then times
    `etcdctl snapshot save` and a restart: `kill -9`, start,
    until a linearizable range (`/v3/kv/range`) answers.
Restarts are timed warm (files in the page cache) and cold (every file of the data
directory dropped with posix_fadvise(DONTNEED) first), median of a few runs.

Appends tab-separated `name=value` lines (kind=peer) to the results file that
`benches/report.rs` reads. Standard library only; installs missing Debian packages.

    benches/peer_restart.py [--keys N] [--results PATH] [--runs 3]
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MASK = (1 << 64) - 1
ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
REDIS_PORT = 16391
ETCD_CLIENT = 12479
ETCD_PEER = 12480


def value(k, length=100):
    """The bytes of realistic_value(k, length) in benches/common/mod.rs."""
    x = (k * 6364136223846793005 + 1442695040888963407) & MASK
    v = bytearray(b'{"id":%d,"name":"' % k)
    while len(v) < length:
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
        v.append(ALPHABET[(x >> 33) % len(ALPHABET)])
    return bytes(v[:length])


def key(k):
    return b"user:%010d" % k


def ensure_packages():
    need = []
    for cmd, pkg in [
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("etcd", "etcd-server"),
        ("etcdctl", "etcd-client"),
    ]:
        if shutil.which(cmd) is None and pkg not in need:
            need.append(pkg)
    if need:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y"] + need, check=True,
                       stdout=subprocess.DEVNULL)


def drop_cache(path):
    """Syncs and drops every file under `path` from the page cache."""
    for root, _, files in os.walk(path):
        for name in files:
            try:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


class Results:
    def __init__(self, path):
        self.path = path

    def add(self, **fields):
        line = "\t".join(f"{k}={v}" for k, v in fields.items())
        print(line, flush=True)
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "a") as f:
                f.write(line + "\n")


# ---------------------------------------------------------------- Redis


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def redis_start(work, log):
    return subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--dir", work,
         "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--logfile", log],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def redis_call(sock_file, sock, *args):
    sock.sendall(resp(*args))
    line = sock_file.readline()
    if line.startswith(b"$") and not line.startswith(b"$-1"):
        n = int(line[1:])
        sock_file.read(n + 2)
    return line


def redis_until_get(deadline_s=300):
    """Polls `GET user:0000000000` until Redis answers with the value."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=5) as s:
                f = s.makefile("rb")
                while True:
                    line = redis_call(f, s, b"GET", key(0))
                    if line.startswith(b"$") and not line.startswith(b"$-1"):
                        return
                    if not line.startswith(b"-LOADING"):
                        raise RuntimeError(f"redis answered {line!r}")
                    time.sleep(0.001)
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
            time.sleep(0.001)
    raise RuntimeError("redis did not answer")


def redis_bench(keys, runs, work, results):
    log = os.path.join(work, "redis.log")
    proc = redis_start(work, log)
    try:
        for _ in range(500):
            try:
                with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1) as s:
                    s.sendall(resp(b"PING"))
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.01)
        cmds = os.path.join(work, "load.resp")
        with open(cmds, "wb") as f:
            for k in range(keys):
                f.write(resp(b"SET", key(k), value(k)))
        t = time.monotonic()
        with open(cmds, "rb") as f:
            subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "--pipe"], stdin=f,
                           check=True, stdout=subprocess.DEVNULL)
        results.add(kind="peer", system="redis", op="load", keys=keys,
                    secs=f"{time.monotonic() - t:.6f}")
        os.remove(cmds)
        with socket.create_connection(("127.0.0.1", REDIS_PORT)) as s:
            f = s.makefile("rb")
            saves = []
            for _ in range(runs):
                t = time.monotonic()
                line = redis_call(f, s, b"SAVE")
                saves.append(time.monotonic() - t)
                assert line.startswith(b"+OK"), line
        rdb = os.path.getsize(os.path.join(work, "dump.rdb"))
        results.add(kind="peer", system="redis", op="save", keys=keys,
                    secs=f"{statistics.median(saves):.6f}", bytes=rdb)
        for cache in ["warm", "cold"]:
            times = []
            for _ in range(runs):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                if cache == "cold":
                    drop_cache(work)
                t = time.monotonic()
                proc = redis_start(work, log)
                redis_until_get()
                times.append(time.monotonic() - t)
            results.add(kind="peer", system="redis", op="restart", cache=cache, keys=keys,
                        secs=f"{statistics.median(times):.6f}")
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- etcd


def b64(b):
    return base64.b64encode(b).decode()


def etcd_start(work):
    peer = f"http://127.0.0.1:{ETCD_PEER}"
    client = f"http://127.0.0.1:{ETCD_CLIENT}"
    return subprocess.Popen(
        ["etcd", "--name", "e1", "--data-dir", os.path.join(work, "data"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"e1={peer}", "--initial-cluster-state", "new",
         "--quota-backend-bytes", str(8 << 30), "--max-txn-ops", "1000",
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "etcd.log"), "ab"))


def etcd_post(conn, path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"etcd {path}: {r.status} {data[:200]!r}")
    return json.loads(data)


def etcd_until_read(deadline_s=600):
    """Polls a linearizable range of user:0000000000 until it returns the key."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", ETCD_CLIENT, timeout=10)
            r = etcd_post(conn, "/v3/kv/range", {"key": b64(key(0))})
            conn.close()
            if r.get("kvs"):
                return
        except (OSError, RuntimeError, http.client.HTTPException):
            pass
        time.sleep(0.002)
    raise RuntimeError("etcd did not answer")


def etcd_bench(keys, runs, work, results, ops_per_txn=1000, conns=8):
    proc = etcd_start(work)
    try:
        etcd_until_ready()
        t = time.monotonic()
        batches = list(range(0, keys, ops_per_txn))
        errors = []

        def loader(part):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", ETCD_CLIENT, timeout=60)
                for first in batches[part::conns]:
                    ops = [{"requestPut": {"key": b64(key(k)), "value": b64(value(k))}}
                           for k in range(first, min(first + ops_per_txn, keys))]
                    etcd_post(conn, "/v3/kv/txn", {"success": ops})
                conn.close()
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=loader, args=(i,)) for i in range(conns)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise errors[0]
        results.add(kind="peer", system="etcd", op="load", keys=keys,
                    secs=f"{time.monotonic() - t:.6f}", ops_per_txn=ops_per_txn)
        snaps = []
        size = 0
        for i in range(runs):
            out = os.path.join(work, f"snap-{i}.db")
            t = time.monotonic()
            subprocess.run(["etcdctl", "--endpoints", f"127.0.0.1:{ETCD_CLIENT}",
                            "snapshot", "save", out], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            snaps.append(time.monotonic() - t)
            size = os.path.getsize(out)
            os.remove(out)
        results.add(kind="peer", system="etcd", op="snapshot", keys=keys,
                    secs=f"{statistics.median(snaps):.6f}", bytes=size,
                    data_dir_bytes=dir_bytes(os.path.join(work, "data")))
        for cache in ["warm", "cold"]:
            times = []
            for _ in range(runs):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                if cache == "cold":
                    drop_cache(os.path.join(work, "data"))
                t = time.monotonic()
                proc = etcd_start(work)
                etcd_until_read()
                times.append(time.monotonic() - t)
            results.add(kind="peer", system="etcd", op="restart", cache=cache, keys=keys,
                        secs=f"{statistics.median(times):.6f}")
    finally:
        proc.kill()
        proc.wait()


def etcd_until_ready():
    start = time.monotonic()
    while time.monotonic() - start < 60:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", ETCD_CLIENT, timeout=5)
            etcd_post(conn, "/v3/kv/range", {"key": b64(b"probe")})
            conn.close()
            return
        except (OSError, RuntimeError, http.client.HTTPException):
            time.sleep(0.05)
    raise RuntimeError("etcd did not start")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--results", default=os.environ.get("RAFTKV_BENCH_RESULTS"))
    p.add_argument("--only", choices=["redis", "etcd"])
    args = p.parse_args()
    assert len(value(0)) == 100 and len(value(1, 1024)) == 1024
    ensure_packages()
    results = Results(args.results)
    results.add(kind="peer_versions",
                redis=subprocess.run(["redis-server", "--version"], capture_output=True,
                                     text=True).stdout.split()[2].removeprefix("v="),
                etcd=subprocess.run(["etcd", "--version"], capture_output=True,
                                    text=True).stdout.split()[2])
    base = os.environ.get("CARGO_TARGET_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="raftkv-peers-", dir=base) as work:
        if args.only in (None, "redis"):
            os.makedirs(os.path.join(work, "redis"))
            redis_bench(args.keys, args.runs, os.path.join(work, "redis"), results)
        if args.only in (None, "etcd"):
            os.makedirs(os.path.join(work, "etcd"))
            etcd_bench(args.keys, args.runs, os.path.join(work, "etcd"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
