#!/usr/bin/python3
"""TLS on both ports (SPEC section 11) against the real userdb-server, with a
test CA the suite makes with the openssl command line:

- HTTPS with curl --cacert and with Python's http.client over ssl;
- MessagePack-RPC over TLS with Python's ssl + python3-msgpack (auth,
  pipelined gets);
- the client side refuses a certificate from another CA and an expired one;
- TLS 1.1 is refused; plaintext HTTP, plaintext RPC and garbage on the TLS
  ports get no plaintext answer and are closed, and the server goes on;
- SIGHUP loads a new certificate (new connections get it, open ones go on);
  a bad one keeps the old and says why; an unusable certificate at start
  is refused.

Prints "N passed, M failed" and exits non-zero on any failure."""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import udclient  # noqa: E402

KEY = "tls-test-key-0123456789"
TMP = tempfile.mkdtemp(prefix="userdb-tls-")
_ca, _other_ca = udclient.TestCA(TMP, "ca"), udclient.TestCA(TMP, "otherca")
CA, OTHER_CA = _ca.pem, _other_ca.pem
CERT, CERT_KEY = _ca.cert("server")
CERT2, CERT2_KEY = _other_ca.cert("server2")
OLD, OLD_KEY = _ca.cert("expired", dates=("-startdate", "20200101000000Z",
                                          "-enddate", "20200102000000Z"))
LIVE_CERT, LIVE_KEY = os.path.join(TMP, "live.pem"), os.path.join(TMP,
                                                                  "live.key")
shutil.copy(CERT, LIVE_CERT)
shutil.copy(CERT_KEY, LIVE_KEY)


def Server(cert, key, expect_ready=True):
    return udclient.Server("--api-key", KEY, "--tls-cert", cert,
                           "--tls-key", key, expect_ready=expect_ready)


def client_ctx(ca=CA, **kw):
    ctx = ssl.create_default_context(cafile=ca)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def Rpc(addr, ctx=None, host="localhost"):
    return udclient.Rpc(addr, ctx=ctx or client_ctx(), host=host)


T = udclient.Tests()
test = T.test
srv = Server(LIVE_CERT, LIVE_KEY)


@test
def https_with_curl_cacert():
    url = "https://localhost:%d/v1/users" % srv.http[1]
    out = subprocess.run(["curl", "-sS", "--cacert", CA, "-H",
                          "Authorization: Bearer " + KEY, "-d",
                          '{"name":"Tee","email":"tee@x.com"}', "-H",
                          "Content-Type: application/json", url],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data"]["name"] == "Tee", out.stdout
    # without the CA curl refuses the certificate
    out = subprocess.run(["curl", "-sS", url], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 60, (out.returncode, out.stderr)


@test
def https_with_python_http_client():
    c = http.client.HTTPSConnection("localhost", srv.http[1],
                                    context=client_ctx(), timeout=20)
    for _ in range(3):  # keep-alive over one TLS connection
        c.request("GET", "/v1/users?email=tee@x.com",
                  headers={"Authorization": "Bearer " + KEY})
        r = c.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and body["pagination"]["total"] == 1, body
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
    c.close()


@test
def rpc_over_tls_with_python_ssl_and_msgpack():
    c = Rpc(srv.rpc)
    assert c.ok("ping") == "pong"
    assert c.ok("auth", KEY) is True
    u = c.ok("user.get_by_email", "TEE@x.com")
    ids = [c.send("user.get", [u["id"]]) for _ in range(500)]
    for msgid in ids:  # pipelined, in order, all answered
        m = c.recv()
        assert m[1] == msgid and m[3]["email"] == "tee@x.com", m
    big = c.ok("user.update", u["id"], {"custom_data": {"x": "y" * 6000}})
    assert len(big["custom_data"]["x"]) == 6000
    c.close()


@test
def client_refuses_wrong_and_expired_certificates():
    for ctx in (client_ctx(OTHER_CA),):
        try:
            Rpc(srv.rpc, ctx)
            raise AssertionError("a certificate of another CA was accepted")
        except ssl.SSLCertVerificationError as e:
            assert "certificate verify failed" in str(e), e
    try:  # the name must match too
        Rpc(srv.rpc, host="elsewhere.example")
        raise AssertionError("a wrong host name was accepted")
    except ssl.SSLCertVerificationError:
        pass
    old = Server(OLD, OLD_KEY)
    try:
        try:
            Rpc(old.rpc)
            raise AssertionError("an expired certificate was accepted")
        except ssl.SSLCertVerificationError as e:
            assert "expired" in str(e), e
        out = subprocess.run(["curl", "-sS", "--cacert", CA,
                              "https://localhost:%d/healthz" % old.http[1]],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 60 and "expired" in out.stderr, out.stderr
    finally:
        old.stop()


@test
def tls_1_1_is_refused():
    ctx = client_ctx()
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        Rpc(srv.rpc, ctx)
        raise AssertionError("TLS 1.1 accepted")
    except (ssl.SSLError, ConnectionResetError):
        pass


def closed_without_plaintext_reply(port, data):
    """Sends data and reads to the end: the server closes cleanly (FIN, so
    EOF here, never a reset, which would also have thrown away anything it
    had sent) after at most a TLS alert record (content type 21), never an
    HTTP or msgpack answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = b""
    s.sendall(data)
    while True:
        chunk = s.recv(4096)  # ConnectionResetError fails the test
        if not chunk:
            break
        got += chunk
    s.close()
    assert not got or got[0] == 21, got[:80]


@test
def plaintext_and_garbage_on_tls_ports_are_dropped():
    t0 = time.time()
    closed_without_plaintext_reply(srv.http[1],
                                   b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    closed_without_plaintext_reply(srv.rpc[1], msgpack.packb([0, 1, "ping",
                                                              []]))
    closed_without_plaintext_reply(srv.rpc[1], os.urandom(5000))
    # a plaintext client that goes on sending after the server gave up on
    # it: what it sends is read and discarded, so its send completes too
    closed_without_plaintext_reply(srv.http[1], b"POST /v1/users HTTP/1.1\r\n"
                                   b"Content-Length: 3000000\r\n\r\n" +
                                   b"x" * 3000000)
    # a TLS-looking record header with nonsense after it
    closed_without_plaintext_reply(srv.http[1], b"\x16\x03\x01\x00\x40" +
                                   os.urandom(64))
    assert time.time() - t0 < 8, "a bad client was left hanging"
    c = Rpc(srv.rpc)
    assert c.ok("ping") == "pong", "the server goes on"


def refused_then_eof(c, data, want):
    """Over TLS: data is refused mid-request with an error reply (want in
    it).  The server reads and discards the rest, so the client can still
    send all of data, then reads that reply and a clean end (close_notify,
    or at least a FIN), not a reset."""
    c.sendall(data)  # a reset or a broken pipe raises
    got = b""
    while True:
        try:
            chunk = c.recv(65536)  # so does a reset here
        except ssl.SSLEOFError:  # FIN without close_notify: still clean
            break
        if not chunk:
            break
        got += chunk
    assert want in got, got[:300]
    c.close()


@test
def refused_requests_over_tls_close_lingering():
    # HTTP: a body over --max-body (1 MB) gets its 413, then a clean end
    raw = socket.create_connection(srv.http, timeout=20)
    c = client_ctx().wrap_socket(raw, server_hostname="localhost")
    body = b"x" * (4 << 20)
    refused_then_eof(c, b"POST /v1/users HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + KEY.encode() +
                     b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
                     b"413")
    # RPC: a frame over --max-frame gets its error, then a clean end
    c = Rpc(srv.rpc)
    c.ok("auth", KEY)
    refused_then_eof(c.s, msgpack.packb([0, 9, "user.get", ["x" * (4 << 20)]]),
                     b"frame over the size limit")


@test
def sighup_reloads_the_certificate():
    before = Rpc(srv.rpc)
    before.ok("auth", KEY)
    shutil.copy(CERT2, LIVE_CERT)
    shutil.copy(CERT2_KEY, LIVE_KEY)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_line("tls certificate reloaded", 5)
    after = Rpc(srv.rpc, client_ctx(OTHER_CA))
    assert after.ok("ping") == "pong"
    try:
        Rpc(srv.rpc)  # the old CA no longer vouches for the new certificate
        raise AssertionError("old certificate still served")
    except ssl.SSLCertVerificationError:
        pass
    assert before.ok("server.stats")["users"] == 1, "open connection goes on"
    with open(LIVE_CERT, "w") as f:
        f.write("not a certificate\n")
    srv.proc.send_signal(signal.SIGHUP)
    assert srv.wait_stderr("certificate not reloaded", 5), srv.stderr()
    assert Rpc(srv.rpc, client_ctx(OTHER_CA)).ok("ping") == "pong"


@test
def unusable_certificate_is_refused_at_start():
    for cert, key, want in [(os.path.join(TMP, "nope.pem"), CERT_KEY,
                             "cannot use certificate"),
                            (CERT, CERT2_KEY, "mismatch")]:
        s = Server(cert, key, expect_ready=False)
        assert s.proc.wait(timeout=10) != 0
        assert want in s.stderr(), s.stderr()
        s.stop()


rc = srv.stop()
T.check("sigterm exits 0 (got %r)" % rc, rc == 0)
shutil.rmtree(TMP, ignore_errors=True)
T.finish()
