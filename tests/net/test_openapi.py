#!/usr/bin/python3
"""The OpenAPI document against the server it describes (SPEC §11):

- every route the server has is in the document with exactly the methods
  the server allows, and every path of the document is a route of the
  server.  The server's routes are derived from net/http.c's route table
  (route_find's and route_user's path literals, each tied to the struct
  route it returns; a struct route the derivation cannot place fails the
  test, so a new kind of route cannot slip past), then probed: a method no
  route has gets 405 with the route's Allow header, which must match the
  table's allow string and the document's operations;
- the change stream's events (SSE data and RPC change notifications)
  conform to the document's Change schema (openapi_check.check_event).

Prints "N passed, M failed" and exits non-zero on any failure."""
import http.client
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_check  # noqa: E402
import udclient  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HTTP_C = os.path.join(HERE, "..", "..", "net", "http.c")
KEY = "openapi-key-0123456789"
SAMPLE = {"id": "usr_openapi0000000", "target": "github"}


def function_body(src, name):
    m = re.search(r"\n(?:static )?const struct route \*%s\([^)]*\)\n\{" % name,
                  src)
    assert m, "no %s in net/http.c" % name
    end = src.index("\n}\n", m.end())
    return src[m.end():end]


def derive_routes(src):
    """{path template: (struct route name, its allow string)}."""
    allow = dict(re.findall(
        r'static const struct route (r_\w+) = \{\s*"([^"]*)"', src))
    assert allow, "no struct route in net/http.c"
    routes = {}
    top = function_body(src, "route_find")
    for lit, name in re.findall(
            r'seg_eq\(p, n, "(/[^"]*)"\)\)\s*return &(r_\w+);', top):
        routes[lit] = name
    prefix = re.search(r'memcmp\(p, "(/[^"]*/)", \d+\)\)\s*return route_user',
                       top)
    assert prefix, "route_find no longer hands a prefix to route_user"
    base = prefix.group(1) + "{id}"
    user = function_body(src, "route_user")
    m = re.search(r"if \(!slash\)\s*rt = &(r_\w+);", user)
    assert m, "route_user: no route for the bare id"
    routes[base] = m.group(1)
    for lit, name in re.findall(
            r'seg_eq\(rest, rn, "([^"]+)"\)\)\s*rt = &(r_\w+);', user):
        routes[base + "/" + lit] = name
    for lit, name in re.findall(
            r'memcmp\(rest, "([^"]+/)", \d+\)(?:.|\n)*?rt = &(r_\w+);', user):
        routes[base + "/" + lit + "{target}"] = name
    placed = set(routes.values())
    missing = set(allow) - placed
    assert not missing, ("struct routes the test cannot place (update "
                         "derive_routes): %s" % sorted(missing))
    return {path: (name, allow[name]) for path, name in routes.items()}


def methods(allow):
    return {m.strip().upper() for m in allow.split(",") if m.strip()}


T = udclient.Tests()
SRC = open(HTTP_C).read()
srv = udclient.Server("--api-key", KEY)
SPEC = openapi_check.load(srv.http[1])


test = T.test


@test
def every_server_route_is_documented_with_its_methods():
    routes = derive_routes(SRC)
    assert len(routes) >= 13, routes
    doc = SPEC.doc["paths"]
    for path, (name, allow) in sorted(routes.items()):
        concrete = path.format(**SAMPLE)
        r = udclient.request(srv.http, "PROPFIND", concrete, KEY)
        assert r.status == 405, (path, r)
        assert methods(r.headers.get("allow", "")) == methods(allow), \
            (path, name, r.headers.get("allow"), allow)
        assert path in doc, "%s (%s, %s) is not in openapi.json" % (
            path, name, allow)
        documented = {m.upper() for m in doc[path]
                      if m in ("get", "put", "post", "patch", "delete")}
        assert documented == methods(allow), (path, documented, allow)
    extra = set(doc) - set(routes)
    assert not extra, "documented paths the server does not have: %s" % (
        sorted(extra))


@test
def the_derivation_notices_a_missing_route():
    # the check above must be able to fail: a route table with one more
    # struct route that route_find never returns is refused
    src = SRC.replace("static const struct route r_users = {",
                      'static const struct route r_new = {"GET", {}};\n'
                      "static const struct route r_users = {", 1)
    try:
        derive_routes(src)
    except AssertionError as e:
        assert "r_new" in str(e), e
    else:
        raise AssertionError("an unplaced route went unnoticed")
    # and a route the document lacks is reported
    routes = derive_routes(SRC.replace('"/healthz"', '"/healthz2"', 1))
    assert "/healthz2" in routes and "/healthz2" not in SPEC.doc["paths"]


@test
def change_events_conform_to_the_change_schema():
    c = http.client.HTTPConnection(*srv.http, timeout=10)
    c.request("GET", "/v1/events?since=0",
              headers={"Authorization": "Bearer " + KEY})
    r = c.getresponse()
    assert r.status == 200, r.status
    errs = SPEC.check("GET", "/v1/events", r.status,
                      {k.lower(): v for k, v in r.getheaders()}, b"")
    assert not errs, errs
    w = udclient.Rpc(srv.rpc, KEY)
    w.ok("changes.watch", None)
    admin = udclient.Rpc(srv.rpc, KEY)
    u = admin.ok("user.create", {"name": "Ev", "email": "ev@x.io",
                                 "password": "a long password"})
    admin.ok("user.update", u["id"], {"custom_data": {"k": [1]}})
    admin.ok("user.delete", u["id"])
    datas = []
    while len(datas) < 3:
        line = r.fp.readline().decode()
        assert line, "the stream ended"
        if line.startswith("data:"):
            datas.append(json.loads(line[5:]))
    c.close()
    notes = [w.note(10)[2][0] for _ in range(3)]
    assert [d["event"] for d in datas] == ["user.created", "user.updated",
                                           "user.deleted"], datas
    for d in datas + notes:
        errs = SPEC.check_event(d)
        assert not errs, (d, errs)
    # and the check can fail: a change without its seq does not conform
    bad = dict(datas[0])
    del bad["seq"]
    assert SPEC.check_event(bad), "a change without seq passed"
    w.close()
    admin.close()


rc = srv.stop()
T.check("sigterm exits 0 (got %r)" % rc, rc == 0)
T.finish()
