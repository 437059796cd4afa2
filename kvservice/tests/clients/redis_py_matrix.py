"""redis-py against raftkv: run by kvservice/tests/client_matrix.rs.

    python3 redis_py_matrix.py plain HOST:PORT [HOST:PORT ...]   # every member, RESP3 and RESP2
    python3 redis_py_matrix.py auth HOST:PORT PASSWORD            # HELLO 3 AUTH on connect
    python3 redis_py_matrix.py cluster HOST:PORT                  # RedisCluster over MOVED

Exits non-zero (with a traceback naming the failed check) on any mismatch.
"""

import sys

import redis
from redis.cluster import RedisCluster


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def host_port(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def exercise(r, tag, protocol):
    """Commands every application uses, with the reply types redis-py parses."""
    check(r.ping() is True, "PING")
    key = f"py:{tag}:{protocol}"
    check(r.set(key, "v1") is True, "SET")
    check(r.get(key) == b"v1", "GET")
    check(r.set(key, "v2", nx=True) is None, "SET NX on an existing key is nil")
    check(r.set(key, "v3", xx=True, get=True) == b"v1", "SET XX GET returns the old value")
    check(r.mget([key, key + ":missing"]) == [b"v3", None], "MGET with a missing key")
    check(r.exists(key, key + ":missing") == 1, "EXISTS")
    check(r.delete(key, key + ":missing") == 1, "DEL")
    check(r.get(key) is None, "GET after DEL is nil")
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"{key}:p{i}", str(i))
    pipe.get(f"{key}:p49")
    out = pipe.execute()
    check(out[:50] == [True] * 50 and out[50] == b"49", "pipeline of 50 SETs then GET")
    check(r.dbsize() >= 50, "DBSIZE")
    info = r.info()
    check("redis_version" in info and info["redis_mode"] in ("standalone", "cluster"), "INFO parsed")
    check(r.info("raft")["role"] in ("leader", "follower"), "INFO raft section parsed")
    check(r.client_setname("matrix") is True, "CLIENT SETNAME")
    check(r.client_getname() in ("matrix", b"matrix"), "CLIENT GETNAME")
    config = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
              for k, v in r.config_get("maxmemory").items()}
    check(config == {"maxmemory": "0"}, f"CONFIG GET maxmemory: {config}")
    # HELLO without a version reports the protocol in force without changing it.
    hello = r.execute_command("HELLO")
    if isinstance(hello, list):  # RESP2: a flat array of names and values
        hello = dict(zip(hello[::2], hello[1::2]))
    proto = hello.get("proto", hello.get(b"proto"))
    check(proto == protocol, f"the connection speaks RESP{protocol}, HELLO says {proto}")


def plain(addrs):
    for i, addr in enumerate(addrs):
        host, port = host_port(addr)
        default = redis.Redis(host=host, port=port, socket_timeout=10)
        # redis-py 8 speaks RESP3 unless told otherwise; HELLO shows it.
        exercise(default, f"m{i}", 3)
        exercise(redis.Redis(host=host, port=port, protocol=2, socket_timeout=10), f"m{i}", 2)
    # Writes through one member are read through another.
    a = redis.Redis(*host_port(addrs[0]))
    b = redis.Redis(*host_port(addrs[-1]))
    check(a.set("py:shared", "x") is True, "SET through the first member")
    check(b.get("py:shared") == b"x", "GET through the last member")


def auth(addr, password):
    host, port = host_port(addr)
    try:
        redis.Redis(host=host, port=port).ping()
        raise AssertionError("PING without a password succeeded")
    except redis.AuthenticationError:
        pass
    try:
        redis.Redis(host=host, port=port, password="wrong").ping()
        raise AssertionError("a wrong password was accepted")
    except redis.AuthenticationError:
        pass
    for protocol in (3, 2):
        r = redis.Redis(host=host, port=port, password=password, protocol=protocol)
        exercise(r, "auth", protocol)


def cluster(addr):
    host, port = host_port(addr)
    rc = RedisCluster(host=host, port=port, socket_timeout=10)
    nodes = rc.get_nodes()
    check(len(nodes) == 3, f"three nodes in CLUSTER SLOTS, got {nodes}")
    for i in range(100):
        check(rc.set(f"pyc:{i}", str(i)) is True, "SET through RedisCluster")
    for i in range(100):
        check(rc.get(f"pyc:{i}") == str(i).encode(), "GET through RedisCluster")
    check(rc.get("pyc:missing") is None, "a missing key")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    print(f"redis-py {redis.__version__}: {mode} {args[:1]}")
    if mode == "plain":
        plain(args)
    elif mode == "auth":
        auth(args[0], args[1])
    elif mode == "cluster":
        cluster(args[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("ok")


if __name__ == "__main__":
    main()
