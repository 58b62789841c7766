"""The suite's one Python client for the real userdb-server (SPEC §2, §3,
§11): written here on python3-msgpack, http.client and ssl, none of our C
code, so that a test through it is a test of the protocol as a stranger
would speak it.  Import it from a test in tests/ with

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import udclient

Server(*args, ...) starts build/userdb-server (or $USERDB_SERVER) on
127.0.0.1 with --port 0 --http-port 0 (and --no-persist unless data_dir is
given), waits for its "ready rpc=HOST:PORT http=HOST:PORT" line and keeps
every stdout line (lines, wait_line) and its stderr in a file of its own
temporary directory (stderr()).  rpc and http are (host, port) pairs.
stop() sends SIGTERM and returns the exit status (kill() for SIGKILL); the
temporary directory is removed by stop/kill unless keep_dir.

Rpc(addr, key=None, ctx=None, unix=None) is a MessagePack-RPC connection
([0, msgid, method, params] requests, SPEC §3), over TCP, TLS (an
ssl.SSLContext in ctx; host names the certificate) or a Unix socket.
call() returns (error, result) and keeps notifications that arrive before
its response for recv()/note(); ok() asserts there was no error.

request(addr, method, path, ...) is one HTTP(S) request on a fresh
http.client connection and returns a Resp (status, lower-cased headers,
body bytes, json when the body parses).  Given spec (an openapi_check.Spec,
or a list [None] that the first response fills by loading the server's own
document), the response is checked against the OpenAPI document and a
mismatch raises AssertionError.

TestCA(dir) is a throwaway CA made with openssl, for TLS tests.

Tests() is the little runner the tests share: @T.test runs a function at
once, prints "ok NAME" or "FAIL NAME" with its traceback, and T.finish()
prints "N passed, M failed" and exits non-zero on any failure."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import msgpack

SERVER = os.environ.get("USERDB_SERVER", "build/userdb-server")
# cheap password hashing: tests hash many passwords on a busy machine
FAST_HASH = ["--argon2-ops", "1", "--argon2-mem", "8192"]


def _addr_of(word):
    host, port = word.split("=", 1)[1].rsplit(":", 1)
    return (host.strip("[]"), int(port))


class Server:
    def __init__(self, *args, data_dir=None, expect_ready=True, env=None,
                 ready_timeout=20, keep_dir=False, server=None):
        self.dir = tempfile.mkdtemp(prefix="userdb-test-")
        self.keep_dir = keep_dir
        self.errpath = os.path.join(self.dir, "stderr")
        self.err = open(self.errpath, "w")
        argv = [server or SERVER, "--port", "0", "--http-port", "0"]
        argv += ["--data-dir", data_dir] if data_dir else ["--no-persist"]
        self.argv = argv + list(args)
        e = {k: v for k, v in os.environ.items() if not k.startswith("USERDB_")}
        e.update(env or {})
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, env=e)
        self.lines = []
        self.cond = threading.Condition()
        self.rpc = self.http = None
        threading.Thread(target=self._read, daemon=True).start()
        if not expect_ready:
            return
        try:
            line = self.wait_line("ready", ready_timeout)
        except AssertionError:
            self.kill()
            raise
        for word in line.split():
            if word.startswith("rpc="):
                self.rpc = _addr_of(word)
            elif word.startswith("http="):
                self.http = _addr_of(word)

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, text, timeout, start=0):
        """The first stdout line from index start on that holds text;
        AssertionError (with the output) when none comes in time."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if text in line:
                        return line
                left = deadline - time.time()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("no %r line; stdout %r stderr %r" %
                                         (text, self.lines, self.stderr()))
                self.cond.wait(min(left, 0.2))

    def wait_stderr(self, text, timeout):
        """True once stderr holds text, False after timeout seconds."""
        deadline = time.time() + timeout
        while text not in self.stderr():
            if time.time() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stderr(self):
        self.err.flush()
        with open(self.errpath, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def _end(self, sig, timeout):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            rc = "timeout"
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def stop(self, timeout=15):
        return self._end(signal.SIGTERM, timeout)

    def kill(self):
        return self._end(signal.SIGKILL, 10)


class Rpc:
    def __init__(self, addr=None, key=None, ctx=None, host="localhost",
                 unix=None, timeout=20):
        if unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(unix)
        else:
            self.s = socket.create_connection(addr, timeout=timeout)
        if ctx is not None:
            self.s = ctx.wrap_socket(self.s, server_hostname=host)
        self.timeout = timeout
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.notes = []
        self.next_id = 1
        if key is not None:
            self.ok("auth", key)

    def send(self, method, params):
        """Sends a request; returns its msgid."""
        msgid = self.next_id
        self.next_id += 1
        self.s.sendall(msgpack.packb([0, msgid, method, params]))
        return msgid

    def sendall(self, data):
        self.s.sendall(data)

    def _read(self):
        while True:
            for msg in self.unpacker:
                return msg
            data = self.s.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.unpacker.feed(data)

    def recv(self):
        """The next message: a kept notification first, then the wire."""
        if self.notes:
            return self.notes.pop(0)
        return self._read()

    def note(self, timeout=5):
        """The next notification [2, method, params]; responses that come
        first are an AssertionError."""
        if self.notes:
            return self.notes.pop(0)
        self.s.settimeout(timeout)
        try:
            m = self._read()
        finally:
            self.s.settimeout(self.timeout)
        assert m[0] == 2, m
        return m

    def call(self, method, *params):
        """(error, result) of one request; notifications are kept."""
        msgid = self.send(method, list(params))
        while True:
            msg = self._read()
            if msg[0] == 2:
                self.notes.append(msg)
                continue
            assert msg[0] == 1 and msg[1] == msgid, msg
            return msg[2], msg[3]

    def ok(self, method, *params):
        err, res = self.call(method, *params)
        assert err is None, (method, err)
        return res

    def close(self):
        self.s.close()


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def _conform(spec, addr, method, path, resp):
    if isinstance(spec, list):  # loaded from this server on first use
        if spec[0] is None:
            import openapi_check
            spec[0] = openapi_check.load(addr[1])
        spec = spec[0]
    errs = spec.check(method, path, resp.status, resp.headers, resp.body)
    assert not errs, ("response does not conform to openapi.json",
                      method, path, resp.status, errs)


def request(addr, method, path, key=None, body=None, headers=None, ctx=None,
            host="localhost", timeout=20, spec=None):
    """One request on a new connection.  body: a dict or list is sent as
    JSON, bytes or str as they are."""
    if ctx is not None:
        c = http.client.HTTPSConnection(host, addr[1], context=ctx,
                                        timeout=timeout)
    else:
        c = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
    h = {"Authorization": "Bearer " + key} if key else {}
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()
    if spec is not None:
        _conform(spec, addr, method, path, resp)
    return resp


_CA_CNF = """[ca]
default_ca = d
[d]
database = ./index-%(n)s.txt
new_certs_dir = .
serial = ./serial-%(n)s
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
"""


class TestCA:
    """A throwaway certificate authority made with the openssl command line
    in directory dir (P-256 keys, valid 2 days): pem is its certificate,
    for a client's cafile.  cert(name) signs a server certificate for san
    and returns (certificate path, key path); dates replaces "-days 2"
    (e.g. -startdate/-enddate for an expired one)."""

    def __init__(self, dir, name="ca"):
        self.dir, self.name = dir, name
        with open(os.path.join(dir, name + ".cnf"), "w") as f:
            f.write(_CA_CNF % {"n": name})
        open(os.path.join(dir, "index-%s.txt" % name), "w").close()
        with open(os.path.join(dir, "serial-%s" % name), "w") as f:
            f.write("01\n")
        self._sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                 name + ".key", "-out", name + ".pem", "-days", "2",
                 "-subj", "/CN=" + name)
        self.pem = os.path.join(dir, name + ".pem")

    def _sh(self, *args):
        subprocess.run(args, cwd=self.dir, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cert(self, name, cn="localhost", san="DNS:localhost,IP:127.0.0.1",
             dates=("-days", "2")):
        self._sh("openssl", "req", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                 name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
                 "-addext", "subjectAltName=" + san)
        self._sh("openssl", "ca", "-batch", "-config", self.name + ".cnf",
                 "-cert", self.name + ".pem", "-keyfile", self.name + ".key",
                 "-in", name + ".csr", "-out", name + ".pem", "-notext",
                 *dates)
        return (os.path.join(self.dir, name + ".pem"),
                os.path.join(self.dir, name + ".key"))


class Tests:
    def __init__(self):
        self.passed = self.failed = 0

    def test(self, fn):
        try:
            fn()
            self.passed += 1
            print("ok", fn.__name__, flush=True)
        except Exception as e:  # report and go on
            self.failed += 1
            print("FAIL", fn.__name__, repr(e))
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
        return fn

    def check(self, what, ok):
        """Counts a named check done outside a test function."""
        if ok:
            self.passed += 1
            print("ok", what)
        else:
            self.failed += 1
            print("FAIL", what)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)
