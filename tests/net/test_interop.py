#!/usr/bin/python3
"""Interop: drive userdb-server's MessagePack-RPC port with an independent
client (udclient.py: python3-msgpack and plain sockets, none of our C code),
and check the framing of SPEC section 3: auth, ping, create, get,
get_by_email, list, pipelining, notifications, errors, and the Unix socket.

Prints "N passed, M failed" and exits non-zero on any failure."""
import os
import shutil
import sys
import tempfile

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import udclient  # noqa: E402

KEY = "interop-key-0123456789"


class Server(udclient.Server):
    """With a Unix socket in its own directory too."""

    def __init__(self):
        self.sock_dir = tempfile.mkdtemp(prefix="userdb-interop-")
        self.sock_path = os.path.join(self.sock_dir, "rpc.sock")
        super().__init__("--api-key", KEY, "--socket", self.sock_path)

    def stop(self):
        rc = super().stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        return rc


def Client(addr=None, unix=None):
    return udclient.Rpc(addr, unix=unix)


T = udclient.Tests()
test = T.test
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
T.check("sigterm exits 0 (got %r)" % rc, rc == 0)
T.finish()
