#!/usr/bin/python3
"""Interop: drive userdb-server's MessagePack-RPC port with an independent
client written here on python3-msgpack and plain sockets (none of our code),
and check the framing of SPEC section 3: auth, ping, create, get,
get_by_email, list, pipelining, notifications, errors, and the Unix socket.

Prints "N passed, M failed" and exits non-zero on any failure."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack

SERVER = os.environ.get("USERDB_SERVER", "build/userdb-server")
KEY = "interop-key-0123456789"


class Server:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="userdb-interop-")
        self.sock_path = os.path.join(self.dir, "rpc.sock")
        args = [SERVER, "--port", "0", "--http-port", "0", "--api-key", KEY,
                "--no-persist", "--socket", self.sock_path] + list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 10
        self.rpc = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "ready" in line:
                for word in line.split():
                    if word.startswith("rpc="):
                        host, port = word[4:].rsplit(":", 1)
                        self.rpc = (host, int(port))
                break
        if not self.rpc:
            raise RuntimeError("server did not print ready")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


class Client:
    """A plain MessagePack-RPC client: [0, msgid, method, params]."""

    def __init__(self, addr=None, unix=None):
        if unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(unix)
        else:
            self.s = socket.create_connection(addr)
        self.s.settimeout(20)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.next_id = 1

    def send(self, method, params):
        msgid = self.next_id
        self.next_id += 1
        self.s.sendall(msgpack.packb([0, msgid, method, params]))
        return msgid

    def recv(self):
        while True:
            for msg in self.unpacker:
                return msg
            data = self.s.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.unpacker.feed(data)

    def call(self, method, *params):
        msgid = self.send(method, list(params))
        msg = self.recv()
        assert msg[0] == 1 and msg[1] == msgid, msg
        return msg[2], msg[3]

    def ok(self, method, *params):
        err, res = self.call(method, *params)
        assert err is None, (method, err)
        return res

    def close(self):
        self.s.close()


results = {"passed": 0, "failed": 0}


def test(fn):
    try:
        fn()
        results["passed"] += 1
        print("ok", fn.__name__)
    except Exception as e:  # noqa: BLE001 - report every failure
        results["failed"] += 1
        print("FAIL", fn.__name__, repr(e))
    return fn


srv = Server()


@test
def auth_required_but_ping_allowed():
    c = Client(srv.rpc)
    assert c.ok("ping") == "pong"
    err, res = c.call("user.get", "usr_nobody")
    assert err["code"] == "unauthorized" and res is None, err
    err, _ = c.call("auth", "wrong")
    assert err["code"] == "unauthorized", err
    assert c.ok("auth", KEY) is True
    err, _ = c.call("user.get", "usr_nobody")
    assert err["code"] == "not_found", err
    c.close()


@test
def create_get_by_email_list():
    c = Client(srv.rpc)
    c.ok("auth", KEY)
    u = c.ok("user.create", {"name": "Zhāng 伟", "email": "Wei@Example.com",
                             "role": "admin", "custom_data": {"a": [1, 2]}})
    assert u["id"].startswith("usr_") and len(u["id"]) == 20, u
    assert u["name"] == "Zhāng 伟" and u["custom_data"] == {"a": [1, 2]}
    assert u["has_password"] is False and u["last_sign_in_at"] is None
    assert c.ok("user.get", u["id"]) == u
    assert c.ok("user.get_by_email", "wei@EXAMPLE.com")["id"] == u["id"]
    page = c.ok("user.list", {"role": "admin", "search": "伟"})
    assert page["pagination"] == {"page": 1, "limit": 20, "total": 1,
                                  "pages": 1}, page
    assert page["data"][0]["id"] == u["id"]
    many = c.ok("user.get_many", [u["id"], "usr_missing"])
    assert many[0]["id"] == u["id"] and many[1] is None
    err, _ = c.call("user.create", {"name": "X", "email": "wei@example.COM"})
    assert err["code"] == "duplicate_email", err
    err, _ = c.call("user.create", {"name": "X", "email": "nope"})
    assert err["code"] == "invalid_request" and err["field"] == "email", err
    c.close()


@test
def pipelined_thousands():
    c = Client(srv.rpc)
    c.ok("auth", KEY)
    u = c.ok("user.create", {"name": "Pipe", "email": "pipe@example.com"})
    n = 5000
    batch = b"".join(msgpack.packb([0, 1000 + i, "user.get", [u["id"]]])
                     for i in range(n))
    c.s.sendall(batch)
    seen = set()
    for _ in range(n):
        msg = c.recv()
        assert msg[0] == 1 and msg[2] is None and msg[3]["id"] == u["id"]
        seen.add(msg[1])
    assert seen == set(range(1000, 1000 + n))
    c.close()


@test
def notifications_run_without_reply():
    c = Client(srv.rpc)
    c.ok("auth", KEY)
    c.s.sendall(msgpack.packb([2, "user.create",
                               [{"name": "N", "email": "notify@example.com"}]]))
    u = c.ok("user.get_by_email", "notify@example.com")
    assert u["name"] == "N"
    c.close()


@test
def errors_keep_the_connection():
    c = Client(srv.rpc)
    c.ok("auth", KEY)
    err, _ = c.call("no.such_method")
    assert err["code"] == "invalid_request" and err["field"] == "method"
    c.s.sendall(msgpack.packb([0, 77, "user.get", "not-an-array"]))
    msg = c.recv()
    assert msg[1] == 77 and msg[2]["code"] == "invalid_request", msg
    c.s.sendall(msgpack.packb([0, 78, "user.get"]))  # 3 elements
    msg = c.recv()
    assert msg[1] == 78 and msg[2]["code"] == "invalid_request", msg
    assert c.ok("ping") == "pong"
    c.close()


@test
def password_set_and_verify():
    c = Client(srv.rpc)
    c.ok("auth", KEY)
    u = c.ok("user.create", {"name": "P", "email": "pw@example.com",
                             "password": "correct horse"})
    assert u["has_password"] is True
    assert c.ok("user.verify_password", u["id"], "correct horse") is True
    assert c.ok("user.verify_password", u["id"], "wrong pass") is False
    assert c.ok("user.set_password", u["id"], "battery staple") is True
    assert c.ok("user.verify_password", u["id"], "battery staple") is True
    got = c.ok("user.get", u["id"])
    assert got["last_sign_in_at"] is not None
    log = c.ok("log.list", {"user_id": u["id"], "limit": 10})
    events = [e["event"] for e in log["data"]]
    assert events[0] == "user.password_verified", events
    assert "user.password_changed" in events and "user.created" in events
    c.close()


@test
def oversized_frame_gets_error_and_close():
    c = Client(srv.rpc)
    c.ok("auth", KEY)
    big = msgpack.packb([0, 9, "user.get", ["x" * (2 << 20)]])
    try:
        c.s.sendall(big)
    except OSError:
        pass
    msg = c.recv()
    assert msg[1] == 9 and msg[2]["code"] == "invalid_request", msg
    try:
        c.recv()
        raise AssertionError("connection stayed open")
    except (EOFError, ConnectionResetError):
        pass


@test
def unix_socket():
    c = Client(unix=srv.sock_path)
    assert c.ok("ping") == "pong"
    c.ok("auth", KEY)
    assert c.ok("user.get_by_email", "pipe@example.com")["name"] == "Pipe"
    c.close()


rc = srv.stop()
if rc != 0:
    results["failed"] += 1
    print("FAIL sigterm exit status", rc)
else:
    results["passed"] += 1
    print("ok sigterm_exits_0")
print("%d passed, %d failed" % (results["passed"], results["failed"]))
sys.exit(1 if results["failed"] else 0)
