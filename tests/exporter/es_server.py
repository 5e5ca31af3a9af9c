#!/usr/bin/env python3
"""es_server.py: a stand-in for Elasticsearch's bulk and template APIs,
used by test_elasticsearch.c (no Elasticsearch can be installed here).

It listens on 127.0.0.1 (port 0 = any free port), prints the port on
stdout, and checks every request against the format the exporter must
produce (docs/exporters.md):

  PUT /_component_template/<prefix>    JSON with template.settings
  PUT /_index_template/<name>          JSON: index_patterns, composed_of
                                       (an existing component template),
                                       template.aliases
  POST /_bulk                          Content-Type application/x-ndjson,
                                       body ends with a newline, pairs of
                                       action line + document line; the
                                       action is {"index":{"_index","_id",
                                       "routing"}} with
                                       _index = <prefix>_<valuetype>_<version>_<yyyy-MM-dd>
                                       (from the document), matched by an
                                       index template created before,
                                       _id = "<partitionId>-<position>",
                                       routing = "<partitionId>", and the
                                       document carries the record fields
                                       and sequence = (partitionId << 51) + n.
  basic auth on every request when --user/--password are given.

A violation is recorded and answered with 400. Control endpoints:
  POST /_test/fail?count=N&mode=http|item  fail the next N bulks (HTTP 503,
                                           or 200 with "errors":true)
  GET  /_test/state                        docs, bulks, templates, errors
The process exits when its stdin closes (the test died) or on SIGTERM.
"""
import argparse
import base64
import datetime
import fnmatch
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

RECORD_FIELDS = {"partitionId", "value", "key", "position", "timestamp",
                 "valueType", "intent", "recordType", "rejectionType",
                 "rejectionReason", "brokerVersion", "sourceRecordPosition",
                 "authorizations", "recordVersion", "sequence"}


class State:
    def __init__(self, prefix, auth):
        self.prefix = prefix
        self.auth = auth
        self.docs = {}            # (index, id) -> document
        self.bulks = 0            # bulk requests received
        self.bulk_records = []    # record count of every accepted bulk
        self.component_templates = {}
        self.index_templates = {}
        self.errors = []          # format violations
        self.fail_count = 0
        self.fail_mode = "http"
        self.failed = 0           # bulks failed on purpose
        self.last_sequence = {}   # (partition, valueType) -> last sequence
        self.lock = threading.Lock()


def violation(state, message):
    state.errors.append(message)
    return message


def check_bulk(state, handler, body):
    ctype = handler.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip() != "application/x-ndjson":
        return violation(state, "bulk Content-Type is %r" % ctype)
    if not body.endswith(b"\n"):
        return violation(state, "bulk body does not end with a newline")
    lines = body.decode("utf-8").split("\n")[:-1]
    if len(lines) == 0 or len(lines) % 2 != 0:
        return violation(state, "bulk has %d lines, not pairs" % len(lines))
    if not state.component_templates:
        return violation(state, "bulk before the component template")
    items = []
    for i in range(0, len(lines), 2):
        try:
            action = json.loads(lines[i])
            doc = json.loads(lines[i + 1])
        except ValueError as e:
            return violation(state, "line %d is not JSON: %s" % (i, e))
        if list(action.keys()) != ["index"]:
            return violation(state, "action is not index: %r" % action)
        meta = action["index"]
        if set(meta.keys()) != {"_index", "_id", "routing"}:
            return violation(state, "action members %r" % sorted(meta))
        missing = RECORD_FIELDS - set(doc.keys())
        if missing:
            return violation(state, "document lacks %r" % sorted(missing))
        p = doc["partitionId"]
        if meta["_id"] != "%d-%d" % (p, doc["position"]):
            return violation(state, "_id %r for partition %d position %d"
                             % (meta["_id"], p, doc["position"]))
        if meta["routing"] != str(p):
            return violation(state, "routing %r" % meta["routing"])
        day = datetime.datetime.fromtimestamp(
            doc["timestamp"] / 1000, tz=datetime.timezone.utc)
        vt = doc["valueType"].lower().replace("_", "-")
        want = "%s_%s_%s_%s" % (state.prefix, vt,
                                doc["brokerVersion"].lower(),
                                day.strftime("%Y-%m-%d"))
        if meta["_index"] != want:
            return violation(state, "_index %r, expected %r"
                             % (meta["_index"], want))
        if not any(fnmatch.fnmatch(want, pat)
                   for t in state.index_templates.values()
                   for pat in t["index_patterns"]):
            return violation(state, "no index template matches %r" % want)
        seq = doc["sequence"]
        base = p << 51
        if not base < seq < base + (1 << 51):
            return violation(state, "sequence %r outside partition %d"
                             % (seq, p))
        items.append((meta, doc))
    return items


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n > 0 else b""

    def authorized(self, state):
        if state.auth is None:
            return True
        want = "Basic " + base64.b64encode(state.auth.encode()).decode()
        if self.headers.get("Authorization") != want:
            violation(state, "%s %s without the right basic auth"
                      % (self.command, self.path))
            return False
        return True

    def do_PUT(self):
        state = self.server.state
        body = self.body()
        with state.lock:
            if not self.authorized(state):
                return self.reply(401, {"error": "unauthorized"})
            path = urlparse(self.path).path
            try:
                obj = json.loads(body)
            except ValueError:
                violation(state, "PUT %s body is not JSON" % path)
                return self.reply(400, {"error": "bad json"})
            m = re.fullmatch(r"/_component_template/([^/]+)", path)
            if m:
                if m.group(1) != state.prefix or "settings" not in \
                        obj.get("template", {}):
                    violation(state, "bad component template %s %r"
                              % (path, obj))
                    return self.reply(400, {"error": "bad template"})
                state.component_templates[m.group(1)] = obj
                return self.reply(200, {"acknowledged": True})
            m = re.fullmatch(r"/_index_template/([^/]+)", path)
            if m:
                name = m.group(1)
                pats = obj.get("index_patterns")
                comp = obj.get("composed_of", [])
                aliases = obj.get("template", {}).get("aliases", {})
                ok = (isinstance(pats, list) and pats == [name + "_*"]
                      and comp == [state.prefix]
                      and state.prefix in state.component_templates
                      and len(aliases) == 1
                      and name.startswith(state.prefix + "_"))
                if not ok:
                    violation(state, "bad index template %s %r" % (name, obj))
                    return self.reply(400, {"error": "bad template"})
                state.index_templates[name] = obj
                return self.reply(200, {"acknowledged": True})
            violation(state, "unexpected PUT %s" % path)
            return self.reply(404, {"error": "not found"})

    def do_POST(self):
        state = self.server.state
        body = self.body()
        url = urlparse(self.path)
        with state.lock:
            if url.path == "/_test/fail":
                q = parse_qs(url.query)
                state.fail_count = int(q.get("count", ["1"])[0])
                state.fail_mode = q.get("mode", ["http"])[0]
                return self.reply(200, {"ok": True})
            if not self.authorized(state):
                return self.reply(401, {"error": "unauthorized"})
            if url.path != "/_bulk":
                violation(state, "unexpected POST %s" % url.path)
                return self.reply(404, {"error": "not found"})
            state.bulks += 1
            items = check_bulk(state, self, body)
            if isinstance(items, str):
                return self.reply(400, {"error": items})
            if state.fail_count > 0:
                state.fail_count -= 1
                state.failed += 1
                if state.fail_mode == "http":
                    return self.reply(503, {"error": "unavailable"})
                res = [{"index": {"_index": m["_index"], "_id": m["_id"],
                                  "status": 429,
                                  "error": {"type": "es_rejected_execution_exception",
                                            "reason": "queue full"}}}
                       for m, _ in items]
                return self.reply(200, {"took": 1, "errors": True,
                                        "items": res})
            for meta, doc in items:
                state.docs[(meta["_index"], meta["_id"])] = doc
            state.bulk_records.append(len(items))
            res = [{"index": {"_index": m["_index"], "_id": m["_id"],
                              "status": 201}} for m, _ in items]
            return self.reply(200, {"took": 1, "errors": False,
                                    "items": res})

    def do_GET(self):
        state = self.server.state
        self.body()
        with state.lock:
            if urlparse(self.path).path != "/_test/state":
                violation(state, "unexpected GET %s" % self.path)
                return self.reply(404, {"error": "not found"})
            seqs = {}
            for (index, _id), doc in state.docs.items():
                key = doc["valueType"]
                seqs[key] = max(seqs.get(key, 0),
                                doc["sequence"] - (doc["partitionId"] << 51))
            return self.reply(200, {
                "docs": len(state.docs),
                "ids": sorted(i for (_, i) in state.docs),
                "indices": sorted({ix for (ix, _) in state.docs}),
                "bulks": state.bulks,
                "bulk_records": state.bulk_records,
                "failed": state.failed,
                "component_templates": sorted(state.component_templates),
                "index_templates": sorted(state.index_templates),
                "max_sequence": seqs,
                "errors": state.errors,
            })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", default="zeebe-record")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()
    auth = None
    if args.user is not None:
        auth = "%s:%s" % (args.user, args.password or "")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(args.prefix, auth)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()   # returns when the test closes the pipe or dies
    server.shutdown()


if __name__ == "__main__":
    main()
