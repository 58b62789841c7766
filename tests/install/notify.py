#!/usr/bin/python3
"""userdb-server's systemd notifications (Type=notify in userdb.service),
received the way systemd receives them: a datagram socket named by
NOTIFY_SOCKET.  READY=1 comes once, after the ready line, when both ports
accept a connection; STOPPING=1 once on SIGTERM, before the exit (status 0).
A server started without NOTIFY_SOCKET starts and stops as before.

Exits non-zero on any failure."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

SERVER = os.environ.get("USERDB_SERVER", "build/userdb-server")
PROCS = []  # killed at exit if still running


def start(env):
    args = [SERVER, "--port", "0", "--http-port", "0", "--no-persist",
            "--api-key", "notify-key-0123456789"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    PROCS.append(proc)
    addrs = {}
    for line in proc.stdout:
        if line.startswith("userdb ready"):
            for word in line.split()[2:]:
                k, v = word.split("=", 1)
                host, port = v.rsplit(":", 1)
                addrs[k] = (host, int(port))
            break
    assert set(addrs) == {"rpc", "http"}, "no ready line"
    return proc, addrs


def messages(sock):
    """Every datagram waiting or arriving within 10 s of the first."""
    sock.settimeout(10)
    try:
        out = [sock.recv(4096).decode()]
    except socket.timeout:
        return []
    sock.settimeout(0.2)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="userdb-notify-")
    try:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        proc, addrs = start(env)
        got = messages(sock)
        ready = [m for m in got if "READY=1" in m.split("\n")]
        assert len(ready) == 1, "READY=1 not sent once: %r" % got
        assert "STOPPING=1" not in "".join(got), got
        assert "STATUS=serving rpc=" in ready[0], ready
        for name, addr in addrs.items():  # both accept now
            c = socket.create_connection(addr, timeout=5)
            c.close()
        proc.send_signal(signal.SIGTERM)
        got = messages(sock)
        assert any("STOPPING=1" in m.split("\n") for m in got), got
        assert proc.wait(timeout=20) == 0, "exit status"
        proc.stdout.close()

        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        proc, addrs = start(env)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, "exit status without systemd"
        proc.stdout.close()
        print("notify: READY=1 and STOPPING=1 as systemd expects")
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
