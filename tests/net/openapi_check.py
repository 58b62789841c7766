"""Checking responses against the server's OpenAPI document (SPEC §11).

load(http_port) fetches GET /openapi.json from the running server (no key)
and returns a Spec, or raises when the document cannot be had or parsed.
Spec.check(method, path, status, headers, body) returns a list of
mismatches, empty when the response conforms:

- the path (query stripped) matches one of the document's path templates
  and the method is an operation there; a response to a path or method the
  document does not have (a 404 for an unknown route, a 405) is not checked
  beyond that, since no operation describes it;
- the status is listed among that operation's responses;
- every header the response object marks required is present
  (headers are given with lower-case names);
- the Content-Type (without parameters) is one the response lists, and the
  body is valid against its schema with jsonschema's Draft 2020-12
  validator: a JSON body as a whole, an NDJSON body line by line.  HEAD
  responses, empty bodies of listed bodiless responses and the endless
  text/event-stream are not parsed; Spec.check_event(data) checks one
  event's data (the document's Change) instead.

$refs in the document are resolved by the validator itself against the whole
document, so the schemas are checked exactly as written."""

import http.client
import json
import re
import urllib.parse

import jsonschema

DOC_URI = "urn:userdb:openapi"


def _esc(token):
    return token.replace("~", "~0").replace("/", "~1")


class Spec:
    def __init__(self, doc):
        self.doc = doc
        self.routes = []
        for tmpl in doc.get("paths", {}):
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
            # literal paths before templated ones (/v1/users/export vs {id})
            self.routes.append((tmpl.count("{"), tmpl, re.compile(rx)))
        self.routes.sort()
        try:
            from referencing import Registry, Resource
            from referencing.jsonschema import DRAFT202012
            res = Resource.from_contents(doc, default_specification=DRAFT202012)
            self.kw = {"registry": Registry().with_resource(DOC_URI, res)}
        except ImportError:  # Debian 12's jsonschema 4.10
            self.kw = {"resolver": jsonschema.RefResolver(DOC_URI, doc)}

    def _at(self, pointer):
        node = self.doc
        for tok in pointer.split("/")[1:]:
            node = node[tok.replace("~1", "/").replace("~0", "~")]
        return node

    def _deref(self, node, pointer):
        while isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"][1:]
            node = self._at(pointer)
        return node, pointer

    def _errors(self, pointer, instance, what):
        schema = {"$ref": DOC_URI + "#" + urllib.parse.quote(pointer)}
        v = jsonschema.Draft202012Validator(schema, **self.kw)
        return ["%s: %s at %s" % (what, e.message, "/".join(map(str, e.absolute_path)) or "(root)")
                for e in v.iter_errors(instance)][:5]

    def operation(self, method, path):
        path = path.split("?", 1)[0]
        for _, tmpl, rx in self.routes:
            if rx.match(path):
                op = self.doc["paths"][tmpl].get(method.lower())
                return tmpl, op
        return None, None

    def check(self, method, path, status, headers, body):
        m = "GET" if method == "HEAD" else method
        tmpl, op = self.operation(m, path)
        if op is None:
            return []
        base = "/paths/%s/%s/responses" % (_esc(tmpl), m.lower())
        if str(status) not in op["responses"]:
            return ["status %s not listed for %s %s (listed: %s)" %
                    (status, m, tmpl, ", ".join(op["responses"]))]
        resp, rp = self._deref(op["responses"][str(status)], base + "/" + str(status))
        errs = []
        for name, h in resp.get("headers", {}).items():
            h, _ = self._deref(h, "")
            if h.get("required") and name.lower() not in headers:
                errs.append("required header %s missing" % name)
        content = resp.get("content")
        if not content or method == "HEAD":
            return errs
        ctype = headers.get("content-type", "").split(";")[0].strip()
        if ctype not in content:
            return errs + ["content type %r not listed (%s)" % (ctype, ", ".join(content))]
        sp = rp + "/content/" + _esc(ctype) + "/schema"
        if ctype == "application/json":
            try:
                inst = json.loads(body.decode("utf-8"))
            except ValueError as ex:
                return errs + ["body is not JSON: %s" % ex]
            errs += self._errors(sp, inst, "body")
        elif ctype == "application/x-ndjson":
            for n, line in enumerate(body.split(b"\n"), 1):
                if not line.strip():
                    continue
                try:
                    inst = json.loads(line.decode("utf-8"))
                except ValueError as ex:
                    errs.append("line %d is not JSON: %s" % (n, ex))
                    continue
                errs += self._errors(sp, inst, "line %d" % n)
                if len(errs) > 5:
                    break
        return errs


    def check_event(self, data):
        """Mismatches of one change-stream event's data (the JSON of an SSE
        data line, or a changes.watch notification's change) against the
        schema the document gives it: $defs/data of /v1/events' 200
        text/event-stream body."""
        return self._errors("/paths/%s/get/responses/200/content/%s/schema/"
                            "$defs/data" % (_esc("/v1/events"),
                                            _esc("text/event-stream")),
                            data, "event data")


def load(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/openapi.json")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("GET /openapi.json: %d" % r.status)
        if r.getheader("Content-Type", "").split(";")[0] != "application/json":
            raise RuntimeError("GET /openapi.json: content type %r" %
                               r.getheader("Content-Type"))
        doc = json.loads(body.decode("utf-8"))
    finally:
        conn.close()
    jsonschema.Draft202012Validator.check_schema(
        {"$defs": doc.get("components", {}).get("schemas", {})})
    return Spec(doc)
