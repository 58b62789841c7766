#!/usr/bin/python3
"""Write the hand-made seed inputs of the rpc, http, fields and mpframe
harnesses into tests/fuzz/corpus/ (the recover and apply seeds come from
fuzz_gen_seeds, which runs the store itself).  Deterministic; rerun after
changing it:  /usr/bin/python3 tests/fuzz/make_seeds.py"""
import os
import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"UDSEP"


def put(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def req(msgid, method, params):
    return msgpack.packb([0, msgid, method, params])


# ---- rpc: one connection's bytes (0xc0 first = not authenticated) -------
user = {"name": "Ann Lee", "email": "ann@example.com", "role": "admin",
        "status": "active", "avatar": "https://x.io/a.png",
        "custom_data": {"plan": "pro", "n": [1, 2.5, None, True]}}
rpc = {
    "ping": req(1, "ping", []),
    "auth": b"\xc0" + req(1, "auth", ["k"]) + req(2, "user.get", ["usr_a"]),
    "unauth": b"\xc0" + req(1, "user.get", ["usr_a"]),
    "create": req(1, "user.create", [user]),
    "create_pw": req(1, "user.create", [dict(user, email="p@x.io",
                                             password="password1")]),
    "create_id": req(7, "user.create", [{"id": "usr_imp-1", "name": "I",
                                         "email": "i@x.io"}]),
    "get_many": req(1, "user.get_many", [["usr_a", "usr_b", "nope"]]),
    "get_email": req(1, "user.get_by_email", ["A@X.IO"]),
    "update": req(1, "user.update", ["usr_a", {"name": "Z", "status":
                                               "inactive"}]) +
              req(2, "user.update", ["usr_a", {"role": "viewer"},
                                     {"if_match": "\"0000000000000001\""}]),
    "delete": req(1, "user.delete", ["usr_a"]) +
              req(2, "user.delete", ["usr_b", {"if_match": 5}]),
    "list": req(1, "user.list", [{"role": "user", "limit": 5, "page": "1",
                                  "order": "asc", "search": "a"}]) +
            req(2, "user.list", []),
    "password": req(1, "user.set_password", ["usr_a", "password2"]) +
                req(2, "user.verify_password", ["usr_b", "password1"]) +
                req(3, "user.verify_password", ["usr_b", "wrong"]),
    "suspend": req(1, "user.set_suspended", ["usr_a", True]) +
               req(2, "user.set_suspended", ["usr_a", False]),
    "identity": req(1, "user.link_identity",
                    ["usr_a", "github", {"user_id": "42",
                                         "details": {"login": "gh"}}]) +
                req(2, "user.unlink_identity", ["usr_a", "github"]),
    "log": req(1, "log.list", [{"user_id": "usr_b", "page": 1,
                                "limit": 10}]),
    "stats": req(1, "server.stats", []) + req(2, "server.snapshot", []),
    "notify": msgpack.packb([2, "user.create", [user]]) +
              req(3, "ping", []),
    "bad": b"\x94\x00\x05\xc1" + req(9, "ping", []),
    "unknown": req(1, "no.such", []) + msgpack.packb([0, 1, "ping"]) +
               msgpack.packb({"a": 1}),
    "deep": b"\x94\x00\x01\xa4ping" + b"\x91" * 70 + b"\xc0",
    "big": b"\x94\x00\x01\xa4ping\xdd\xff\xff\xff\xff",
}
for k, v in rpc.items():
    put("rpc", k, v)

# ---- http: one connection's bytes ----------------------------------------
A = "Authorization: Bearer k\r\n"


def http(method, path, body=None, extra=""):
    h = "%s %s HTTP/1.1\r\nHost: x\r\n%s%s" % (method, path, A, extra)
    if body is None:
        return (h + "\r\n").encode()
    b = body.encode()
    return (h + "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(b)).encode() + b


import json
ub = json.dumps(user)
reqs = {
    "healthz": b"GET /healthz HTTP/1.1\r\n\r\n",
    "noauth": b"GET /v1/users HTTP/1.1\r\n\r\n",
    "list": http("GET", "/v1/users?page=1&limit=5&role=user&status=active"
                 "&search=%E6%9D%8E&order=asc&email=a%40x.io"),
    "get": http("GET", "/v1/users/usr_a") + http("HEAD", "/v1/users/usr_b"),
    "create": http("POST", "/v1/users", ub),
    "create_pw": http("POST", "/v1/users",
                      json.dumps(dict(user, password="password1"))),
    "update": http("PATCH", "/v1/users/usr_a", '{"name":"\\u674e","avatar":null}',
                   'If-Match: "0000000000000002"\r\n'),
    "delete": http("DELETE", "/v1/users/usr_%61", None, "If-Match: *\r\n"),
    "password": http("PATCH", "/v1/users/usr_a/password",
                     '{"password":"password2"}') +
                http("POST", "/v1/users/usr_b/password/verify",
                     '{"password":"password1"}'),
    "suspend": http("PATCH", "/v1/users/usr_a/is-suspended",
                    '{"is_suspended":true}'),
    "identity": http("PUT", "/v1/users/usr_a/identities/github",
                     '{"user_id":"42","details":{"x":[1,{"y":null}]}}') +
                http("DELETE", "/v1/users/usr_a/identities/github"),
    "logs": http("GET", "/v1/logs?user_id=usr_b&page=1&limit=2"),
    "metrics": http("GET", "/metrics"),
    "chunked": ("POST /v1/users HTTP/1.1\r\n" + A +
                "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"nam\r\n0\r\n\r\n"
                ).encode(),
    "expect": ("POST /v1/users HTTP/1.1\r\n" + A + "Expect: 100-continue\r\n"
               "Content-Length: 2\r\n\r\n{}").encode(),
    "badmethod": http("PUT", "/v1/users") + http("GET", "/v2/x"),
    "pipeline": http("GET", "/v1/users/usr_a") + http("GET", "/healthz") +
                b"GARBAGE\r\n\r\n",
    "close": http("GET", "/v1/users", None, "Connection: close\r\n"),
}
for k, v in reqs.items():
    put("http", k, v)

# ---- fields: first byte % 7 picks the target -----------------------------
def mp(o):
    return msgpack.packb(o)


fields = {
    "json_create": b"\x00" + ub.encode(),
    "json_update": b"\x01" + b'{"name":"Z","custom_data":{"a":{"b":[1e300,-1]}}}',
    "mp_create": b"\x02" + mp(dict(user, id="usr_x")),
    "mp_update": b"\x03" + mp({"status": "suspended", "avatar": None}),
    "query": b"\x04" + SEP.join([b"page", b"2", b"limit", b"100", b"role",
                                 b"viewer", b"search", b"\xc3\xa9"]),
    "query_mp": b"\x04" + mp({"page": 1, "limit": "5", "order": "desc",
                              "status": None}),
    "valid": b"\x05" + SEP.join([b"usr_abc", b"\xe6\x9d\x8e", b"a@b.co",
                                 b"http://h/x", mp({"k": 1}),
                                 b"$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                                 b"github"]),
    "codec": b"\x06" + mp({"s": "\u00e9", "f": 1.5, "i": -3, "u": 2**63,
                           "a": [None, False, {"x": {}}], "b": 1e-7}),
    "codec_f32": b"\x06" + b"\x81\xa1f\xca\x3f\x8c\xcc\xcd",
}
for k, v in fields.items():
    put("fields", k, v)

# ---- mpframe: streams ------------------------------------------------------
for k, v in list(rpc.items())[:8]:
    put("mpframe", k, v)
put("mpframe", "types", mp([1, -1, 255, 65536, 2**40, -2**40, 1.5, "s" * 40,
                            b"bin", {"m": []}, None, True]) +
    b"\xd4\x01\x00\xc7\x02\x05ab\xdc\x00\x01\xc0\xde\x00\x01\xa1k\xc0")

# ---- keyfile: key files ----------------------------------------------------
keyfile = {
    "good": b"# services\n\nsvc-key-0123456789 verify svc\n"
            b"   # the console\nconsole-key-0123 admin console\n"
            b"ro-key-unnamed\tread\r\n",
    "unknown_scope": b"k1 admin\nk2 superuser\n",
    "fields": b"k1\nk2 read a b\n",
    "bad_name": b"k1 read bad/name\n",
    "twice": b"k1 read\nk1 admin\nflag-key read\n",
    "nul": b"k1 read\x00x\n",
    "long": b"k" * 1100 + b" read\n",
    "many": b"".join(b"key%d read\n" % i for i in range(260)),
}
for k, v in keyfile.items():
    put("keyfile", k, v)

# ---- pwpack: packed hashes and encoded strings -----------------------------


def leb(v):
    out = b""
    while v >= 0x80:
        out += bytes([v & 0x7f | 0x80])
        v >>= 7
    return out + bytes([v])


def pack(alg, v, m, t, p, salt, hsh):
    return bytes([alg]) + leb(v) + leb(m) + leb(t) + leb(p) + \
        bytes([len(salt)]) + salt + hsh


def b64(b):
    import base64
    return base64.b64encode(b).rstrip(b"=")


salt, hsh = bytes(range(16)), bytes(range(100, 132))
pwpack = {
    "packed_id": pack(1, 19, 65536, 2, 1, salt, hsh),
    "packed_i": pack(2, 19, 8, 1, 1, salt[:8], hsh[:16]),
    "text_id": b"$argon2id$v=19$m=65536,t=2,p=1$" + b64(salt) + b"$" +
               b64(hsh),
    "text_i": b"$argon2i$v=19$m=8,t=1,p=1$" + b64(salt[:9]) + b"$" +
              b64(hsh[:17]),
    "text_odd": b"$argon2id$v=19$m=065536,t=2,p=1$" + b64(salt) + b"$" +
                b64(hsh),
}
for k, v in pwpack.items():
    put("pwpack", k, v)

# ---- pgoutput: CopyData messages of the replication stream -----------------
import struct  # noqa: E402


def w(msg, lsn=0x1000):
    return b"w" + struct.pack(">QQQ", lsn, lsn, 0) + msg


def cstr(s):
    return s.encode() + b"\0"


USER_COLS = ["id", "name", "email", "email_folded", "role", "status",
             "avatar", "custom_data", "identities", "password_hash",
             "last_sign_in_at", "created_at", "updated_at", "version",
             "failed_verifies"]


def relation(relid, ns, name, cols):
    b = b"R" + struct.pack(">I", relid) + cstr(ns) + cstr(name) + b"d" + \
        struct.pack(">H", len(cols))
    for c in cols:
        b += b"\0" + cstr(c) + struct.pack(">Ii", 25, -1)
    return w(b)


def tuple_(vals):
    b = struct.pack(">H", len(vals))
    for v in vals:
        if v is None:
            b += b"n"
        elif v == "<unchanged>":
            b += b"u"
        else:
            v = v.encode()
            b += b"t" + struct.pack(">I", len(v)) + v
    return b


def user_row(uid, version, name="Ann", email="ann@x.io", pw=None,
             custom="{}"):
    t = "2025-01-20 15:00:00.123456+00"
    return [uid, name, email, email.lower(), "user", "active", None, custom,
            "{}", pw, None, t, t, str(version), "0"]


begin = w(b"B" + struct.pack(">QQI", 0x2000, 0, 7))
commit = w(b"C" + b"\0" + struct.pack(">QQQ", 0x1000, 0x2000, 0))
rel_users = relation(16385, "userdb", "users", USER_COLS)
rel_events = relation(16390, "userdb", "events",
                      ["id", "user_id", "event", "created_at", "details"])
ins = w(b"I" + struct.pack(">I", 16385) + b"N" +
        tuple_(user_row("usr_pg1", 1)))
upd = w(b"U" + struct.pack(">I", 16385) + b"N" +
        tuple_(user_row("usr_pg1", 2, name="Bo", custom='{"a": [1]}')))
upd_old = w(b"U" + struct.pack(">I", 16385) + b"O" +
            tuple_(user_row("usr_pg1", 2)) + b"N" +
            tuple_(user_row("usr_pg1", 3, pw="<unchanged>")))
ins_ev = w(b"I" + struct.pack(">I", 16390) + b"N" +
           tuple_(["1", "usr_pg1", "user.created",
                   "2025-01-20 15:00:00+00", "{}"]))
dele = w(b"D" + struct.pack(">I", 16385) + b"K" +
         tuple_(["usr_pg1"] + [None] * 14))
origin = w(b"O" + struct.pack(">Q", 0x1000) + cstr("userdb_n1"))
keepalive = b"k" + struct.pack(">QQ", 0x3000, 0) + b"\1"
pgoutput = {
    "stream": SEP.join([rel_users, rel_events, begin, ins, ins_ev, commit,
                        keepalive, begin, upd, upd_old, commit, begin, dele,
                        commit]),
    "own": SEP.join([rel_users, begin, origin, ins, commit]),
    "bad_row": SEP.join([rel_users, begin, w(
        b"I" + struct.pack(">I", 16385) + b"N" +
        tuple_(user_row("usr_pg2", 0, email="nope"))), commit]),
    "unknown_rel": SEP.join([begin, ins]),
    "other_table": relation(16385, "public", "users", USER_COLS[:3]),
}
for k, v in pgoutput.items():
    put("pgoutput", k, v)

# ---- import: flags, seed, NDJSON body ---------------------------------------
lines = [
    {"id": "usr_imp1", "name": "Imp", "email": "imp@x.io"},
    {"name": "No Id", "email": "noid@x.io", "role": "admin",
     "custom_data": {"k": [1, 2]}},
    {"id": "usr_a", "name": "Again", "email": "again@x.io"},
    {"name": "Dup", "email": "A@X.IO"},
    {"name": "H", "email": "h@x.io", "password_hash":
     "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"},
    {"name": "P", "email": "p@x.io", "password": "plain"},
    {"name": "T", "email": "t@x.io", "created_at": "2024-02-29T12:00:00Z",
     "is_suspended": True},
]
body = b"\n".join(json.dumps(x).encode() for x in lines) + \
    b"\n\n  \r\nnot json\n[1]\n{\"name\": \"\xff\"}\n{\"a\":1,\"a\":2}"
put("import", "fail", b"\x00\x07" + body)
put("import", "skip", b"\x01\x03" + body)
put("import", "update", b"\x02\x11" + body)
put("import", "badquery", b"\x03\x00" + body)
put("import", "long_under", b"\x1c\x00" + body)
put("import", "long_over", b"\x1c\xff" + b"\r\n" + body)
