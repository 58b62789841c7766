#!/usr/bin/python3
"""userdb-cli over TLS (--tls, --cacert; SPEC section 11) against the real
userdb-server serving both ports with a certificate from a test CA that this
file makes with the openssl command line:

- every kind of command: RPC (ping, create, get, list, stats) and HTTP
  (export, import) with --cacert, by IP address and by DNS name;
- the certificate is checked: another CA's, an expired one, and one that
  does not name the host are refused with exit 3 (RPC) / 2 (HTTP) and a
  message saying why;
- a plaintext CLI against the TLS ports fails cleanly, and a --tls CLI
  against a plaintext server fails the handshake;
- --tls with --socket is refused (the Unix socket is plaintext).

Prints "N checks, M failed" and exits 1 on any failure."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import udclient  # noqa: E402

BIN = os.environ.get("USERDB_BIN_DIR", "build")
SERVER = os.environ.get("USERDB_SERVER", os.path.join(BIN, "userdb-server"))
CLI = os.path.join(os.path.dirname(SERVER), "userdb-cli")
KEY = "cli-tls-test-key"
TMP = tempfile.mkdtemp(prefix="userdb-cli-tls-")
FAILS = []
NCHECK = 0


def check(cond, what, got=None):
    global NCHECK
    NCHECK += 1
    if not cond:
        line = "FAIL %s | got: %s" % (what, repr(got)[:600])
        FAILS.append(line)
        print(line, flush=True)
    return bool(cond)


def Server(cert=None, key=None):
    args = ["--api-key", KEY, "--socket", os.path.join(TMP, "sock")]
    if cert:
        args += ["--tls-cert", cert, "--tls-key", key]
    return udclient.Server(*args, server=SERVER)


def cli(srv, *args, host="127.0.0.1", tls=(), stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERDB_")}
    cmd = [CLI, "--host", host, "--port", str(srv.rpc[1]),
           "--http-port", str(srv.http[1]),
           "--api-key", KEY, *tls, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=env, input=stdin)
    return p.returncode, p.stdout, p.stderr


def t_commands(S, ca):
    tls = ("--cacert", ca)
    rc, out, err = cli(S, "ping", tls=tls)
    check(rc == 0 and out.strip() == '"pong"', "ping over TLS", (rc, out, err))
    rc, out, err = cli(S, "ping", host="localhost", tls=("--tls", "--cacert", ca))
    check(rc == 0 and "pong" in out, "ping over TLS by DNS name", (rc, out, err))
    rc, out, err = cli(S, "create", "--name", "Tia", "--email", "tia@x.com",
                       "--password", "long-enough-pw", tls=tls)
    u = json.loads(out) if rc == 0 else {}
    check(rc == 0 and u.get("email") == "tia@x.com", "create over TLS",
          (rc, out, err))
    rc, out, err = cli(S, "get", u.get("id", "none"), tls=tls)
    check(rc == 0 and json.loads(out)["name"] == "Tia", "get over TLS",
          (rc, out, err))
    rc, out, err = cli(S, "list", "--limit", "5", tls=tls)
    check(rc == 0 and json.loads(out)["pagination"]["total"] == 1,
          "list over TLS", (rc, out, err))
    rc, out, err = cli(S, "verify-password", u.get("id", "none"),
                       "long-enough-pw", tls=tls)
    check(rc == 0 and out.strip() == "true", "verify over TLS", (rc, out, err))
    path = os.path.join(TMP, "export.ndjson")
    rc, out, err = cli(S, "export", path, tls=tls)
    with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    check(rc == 0 and len(lines) == 1 and lines[0]["email"] == "tia@x.com" and
          lines[0]["password_hash"].startswith("$argon2"),
          "export over HTTPS", (rc, err, lines))
    rows = "".join(json.dumps({"name": "N%d" % i, "email": "n%d@x.com" % i}) +
                   "\n" for i in range(500))
    imp = os.path.join(TMP, "import.ndjson")
    with open(imp, "w") as f:
        f.write(rows + '{"name": "bad"}\n')
    rc, out, err = cli(S, "import", imp, tls=tls)
    check(rc == 1 and "500 created" in err and "1 failed" in err,
          "import over HTTPS (a sized file)", (rc, out, err))
    rc, out, err = cli(S, "import", "-", "--on-conflict", "skip", tls=tls,
                       stdin=rows)
    check(rc == 0 and "500 skipped" in err,
          "import over HTTPS (chunked from a pipe)", (rc, out, err))
    rc, out, err = cli(S, "export", tls=tls, host="localhost")
    check(rc == 0 and len(out.splitlines()) == 501, "export by DNS name",
          (rc, err, len(out)))


def t_refused(S, ca, other_ca, tmp):
    for what, tls, host in (
            ("another CA", ("--cacert", other_ca), "127.0.0.1"),
            ("no --cacert: the system CAs do not know the test CA", ("--tls",),
             "127.0.0.1")):
        rc, out, err = cli(S, "ping", tls=tls, host=host)
        check(rc == 3 and "certificate verify failed" in err and not out,
              "RPC refuses %s" % what, (rc, out, err))
        rc, out, err = cli(S, "export", os.path.join(tmp, "x"), tls=tls,
                           host=host)
        check(rc == 2 and "certificate verify failed" in err,
              "HTTP refuses %s" % what, (rc, out, err))
    rc, out, err = cli(S, "ping", tls=("--cacert", os.path.join(tmp, "nope")))
    check(rc == 3 and "--cacert" in err, "a missing --cacert file is named",
          (rc, out, err))
    rc, out, err = cli(S, "ping", tls=("--tls",), )
    check(rc == 3, "plain --tls with no trusted CA fails", (rc, out, err))
    rc, out, err = cli(S, "ping")
    check(rc == 3 and not out, "a plaintext CLI against the TLS port fails",
          (rc, out, err))
    rc, out, err = cli(S, "export", os.path.join(tmp, "y"))
    check(rc == 2, "a plaintext export against the TLS port fails",
          (rc, out, err))
    rc, out, err = cli(S, "--socket", os.path.join(TMP, "sock"), "ping",
                       tls=("--tls",))
    check(rc == 2 and "--socket" in err, "--tls with --socket is refused",
          (rc, out, err))


def t_wrong_cert(CA, ca, name, **kw):
    cert, key = CA.cert(name, cn=name, **kw)
    S = Server(cert, key)
    try:
        rc, out, err = cli(S, "ping", tls=("--cacert", ca))
        rc2, out2, err2 = cli(S, "export", tls=("--cacert", ca))
    finally:
        S.stop()
    return (rc, err), (rc2, err2)


def main():
    try:
        CA = udclient.TestCA(TMP)
        ca, other_ca = CA.pem, udclient.TestCA(TMP, "otherca").pem
        cert, key = CA.cert("server")
        S = Server(cert, key)
        try:
            t_commands(S, ca)
            t_refused(S, ca, other_ca, TMP)
        finally:
            S.stop()
        (rc, err), (rc2, err2) = t_wrong_cert(
            CA, ca, "expired", dates=("-startdate", "20200101000000Z",
                                  "-enddate", "20200102000000Z"))
        check(rc == 3 and "expired" in err and rc2 == 2 and "expired" in err2,
              "an expired certificate is refused", (rc, err, rc2, err2))
        (rc, err), (rc2, err2) = t_wrong_cert(CA, ca, "elsewhere",
                                              san="DNS:db.example.org")
        check(rc == 3 and "certificate verify failed" in err and rc2 == 2,
              "a certificate naming another host is refused",
              (rc, err, rc2, err2))
        P = Server()
        try:
            t0 = time.time()
            rc, out, err = cli(P, "ping", tls=("--cacert", ca))
            check(rc == 3 and "TLS" in err and time.time() - t0 < 30,
                  "--tls against a plaintext RPC port fails the handshake "
                  "within its time limit", (rc, out, err))
            rc, out, err = cli(P, "export", tls=("--cacert", ca))
            check(rc == 2 and "TLS" in err and not out,
                  "--tls against a plaintext HTTP port fails the handshake",
                  (rc, out, err))
            rc, out, err = cli(P, "ping")
            check(rc == 0, "plaintext still works without --tls",
                  (rc, out, err))
        finally:
            P.stop()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d checks, %d failed" % (NCHECK, len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
