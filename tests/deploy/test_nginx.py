"""test_nginx.py: deploy/nginx/tandem.conf in front of two real gateways.

Data flow: one tandem-broker (single node, embedded gateway off) and two
standalone tandem-gateway processes start on 127.0.0.1 with free ports ->
deploy/nginx/tandem.conf is copied into a temporary nginx prefix with its
upstream server lines, listen ports and log paths replaced by the test's
(every replacement is counted, so a changed config shape fails the test)
and wrapped in a minimal nginx.conf -> nginx (Debian's, not a daemon) runs
it -> the real zbctl (`status`) and HTTP GETs (`/v2/topology`, `/ready`)
go through nginx -> nginx's access logs name the upstream that served each
request ($upstream_addr), which shows the round robin -> gateway 0 is
killed with SIGKILL and the same requests must keep succeeding, served by
gateway 1.

Every process is started by this test and stopped by PID in tearDownClass.
Environment: TANDEM_BUILD_DIR (default <repo>/build), TANDEM_ZBCTL.
Python 3 standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TANDEM_BUILD_DIR", os.path.join(REPO, "build"))
BROKER = os.path.join(BUILD, "broker", "tandem-broker")
GATEWAY = os.path.join(BUILD, "gateway", "tandem-gateway")
ZBCTL = os.environ.get("TANDEM_ZBCTL", os.path.join(
    REPO, "tests", "node_modules", "zbctl", "bin", "zbctl-cli.linux"))
NGINX_CONF = os.path.join(REPO, "deploy", "nginx", "tandem.conf")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REQUESTS = 6          # per kind and phase; round robin needs >= 2
START_TIMEOUT_S = 30
ZBCTL_TIMEOUT_S = 20


def free_port():
    """A port that was free a moment ago (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout_s=5.0):
    """-> (status, body bytes); (None, reason) without a response."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def wait_until(what, predicate, timeout_s=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s" % what)


def topology_ok(url):
    """The gateway at url knows the broker and a leader for partition 1."""
    status, body = http_get(url + "/v2/topology")
    if status != 200:
        return False
    topo = json.loads(body)
    return any(p.get("role") == "leader" and p.get("partitionId") == 1
               for b in topo.get("brokers", [])
               for p in b.get("partitions", []))


def rewrite_config(text, upstreams, listens, log_dir):
    """Rewrites deploy/nginx/tandem.conf for the test: the server lines of
    each upstream in `upstreams` (name -> [host:port]) and the listen ports
    in `listens` (original port -> test port); log paths into log_dir.
    Raises AssertionError if something to replace is missing."""
    for name, addresses in upstreams.items():
        block = re.search(r"upstream %s \{\n(.*?)\n\}" % name, text, re.S)
        assert block is not None, "no upstream %s in tandem.conf" % name
        lines = block.group(1).split("\n")
        servers = [ln for ln in lines if ln.strip().startswith("server ")]
        assert servers, "upstream %s has no server lines" % name
        params = servers[0].split(None, 2)[2]  # "max_fails=... ;"
        others = [ln for ln in lines if not ln.strip().startswith("server ")]
        new = ["    server %s %s" % (a, params) for a in addresses] + others
        text = text[:block.start(1)] + "\n".join(new) + text[block.end(1):]
    for port, test_port in listens.items():
        text, n = re.subn(r"(?m)^(\s*)listen %d\b" % port,
                          r"\g<1>listen 127.0.0.1:%d" % test_port, text)
        assert n == 1, "listen %d appears %d times" % (port, n)
    text, n = re.subn(r"/var/log/nginx/", log_dir.rstrip("/") + "/", text)
    assert n == 3, "expected 3 access_log paths, found %d" % n
    return text


def upstreams_in_log(path):
    """-> list of $upstream_addr values, one per request."""
    out = []
    with open(path) as f:
        for line in f:
            m = re.search(r" upstream=(.*?) upstream_status=", line)
            if m:
                out.append(m.group(1))
    return out


def settled_count(path, timeout_s=5.0):
    """len(upstreams_in_log(path)) once it has not changed for 0.3 s."""
    deadline = time.monotonic() + timeout_s
    last = len(upstreams_in_log(path))
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = len(upstreams_in_log(path))
        if n != last:
            last = n
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= 0.3:
            break
    return last


def upstreams_settled(path, want, timeout_s=5.0):
    """upstreams_in_log(path) once it holds at least want entries: nginx
    writes a request's access-log line when it finalizes the request,
    which may be just after the client got its answer. Bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = upstreams_in_log(path)
        if len(out) >= want or time.monotonic() >= deadline:
            return out
        time.sleep(0.05)


@unittest.skipUnless(os.path.exists(NGINX), "nginx is not installed")
class NginxTest(unittest.TestCase):
    procs = []

    @classmethod
    def start(cls, name, cmd, **kw):
        log = open(os.path.join(cls.dir, name + ".log"), "wb")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, **kw)
        log.close()
        cls.procs.append((name, p))
        return p

    @classmethod
    def setUpClass(cls):
        for path in (BROKER, GATEWAY, ZBCTL):
            if not os.access(path, os.X_OK):
                raise unittest.SkipTest("%s is not built/installed" % path)
        cls.dir = tempfile.mkdtemp(prefix="tandem-nginx-")
        try:
            cls.start_all()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_all(cls):
        d = cls.dir
        b = {k: free_port() for k in ("command", "internal", "management",
                                      "grpc", "rest")}
        cls.management = b["management"]
        with open(os.path.join(d, "broker.yaml"), "w") as f:
            f.write("tandem.broker:\n"
                    "  cluster: {clusterSize: 1, electionTimeout: 500ms, "
                    "heartbeatInterval: 100ms}\n"
                    "  network: {host: 127.0.0.1, commandApi: {port: %d}, "
                    "internalApi: {port: %d}}\n"
                    "  gateway: {enable: false, network: {port: %d}}\n"
                    "  server: {port: %d}\n"
                    "  management: {server: {port: %d}}\n"
                    "  data: {directory: %s}\n"
                    % (b["command"], b["internal"], b["grpc"], b["rest"],
                       b["management"], os.path.join(d, "data")))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        cls.start("broker", [BROKER, "--config",
                             os.path.join(d, "broker.yaml")], env=env)
        wait_until("broker /ready", lambda: http_get(
            "http://127.0.0.1:%d/ready" % b["management"])[0] == 204)
        cls.gateways = []
        for k in range(2):
            grpc, rest = free_port(), free_port()
            p = cls.start("gateway%d" % k, [
                GATEWAY, "--contact-point", "127.0.0.1:%d" % b["command"],
                "--host", "127.0.0.1", "--grpc-port", str(grpc),
                "--rest-port", str(rest)], env=env)
            cls.gateways.append({"grpc": grpc, "rest": rest, "proc": p})
        for gw in cls.gateways:
            wait_until("gateway topology", lambda gw=gw: topology_ok(
                "http://127.0.0.1:%d" % gw["rest"]))

        cls.ports = {26500: free_port(), 8080: free_port(),
                     9600: free_port()}
        with open(NGINX_CONF) as f:
            conf = rewrite_config(
                f.read(),
                {"tandem_grpc": ["127.0.0.1:%d" % g["grpc"]
                                 for g in cls.gateways],
                 "tandem_rest": ["127.0.0.1:%d" % g["rest"]
                                 for g in cls.gateways],
                 "tandem_management": ["127.0.0.1:%d" % b["management"]]},
                cls.ports, d)
        with open(os.path.join(d, "tandem.conf"), "w") as f:
            f.write(conf)
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write("%sdaemon off;\nworker_processes 1;\npid %s/nginx.pid;\n"
                    "error_log %s/error.log notice;\n"
                    "events { worker_connections 256; }\n"
                    "http {\n"
                    "  client_body_temp_path %s/body;\n"
                    "  proxy_temp_path %s/proxy;\n"
                    "  fastcgi_temp_path %s/fastcgi;\n"
                    "  uwsgi_temp_path %s/uwsgi;\n"
                    "  scgi_temp_path %s/scgi;\n"
                    "  access_log off;\n"
                    "  include %s/tandem.conf;\n"
                    "}\n" % ((user,) + (d,) * 8))
        nginx_cmd = [NGINX, "-p", d, "-c", os.path.join(d, "nginx.conf"),
                     "-e", os.path.join(d, "error.log")]
        check = subprocess.run(nginx_cmd + ["-t"], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise AssertionError("nginx -t failed:\n" + check.stderr)
        cls.start("nginx", nginx_cmd)
        wait_until("nginx REST", lambda: topology_ok(
            "http://127.0.0.1:%d" % cls.ports[8080]))
        # The readiness wait above went through nginx; start counting now.
        for name in ("grpc", "rest", "management"):
            path = os.path.join(d, "tandem-%s.log" % name)
            setattr(cls, "log_" + name, path)
        # nginx writes a request's log line when it finalizes the request,
        # which may come just after the client's answer: wait until the
        # count stops growing (bounded) before taking it as the baseline.
        cls.rest_skip = settled_count(cls.log_rest)

    @classmethod
    def tearDownClass(cls):
        for name, p in reversed(cls.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        cls.procs = []
        if os.environ.get("TANDEM_KEEP_DIRS"):
            print("kept %s" % cls.dir)
        elif getattr(cls, "dir", None):
            shutil.rmtree(cls.dir, ignore_errors=True)

    # -- helpers -------------------------------------------------------------

    def zbctl_status(self):
        r = subprocess.run(
            [ZBCTL, "status", "--insecure", "--address",
             "127.0.0.1:%d" % self.ports[26500]],
            capture_output=True, text=True, timeout=ZBCTL_TIMEOUT_S)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Cluster size: 1", r.stdout)
        self.assertRegex(r.stdout, r"Partition 1 : Leader, Healthy")
        return r.stdout

    def rest_topology(self):
        status, body = http_get("http://127.0.0.1:%d/v2/topology"
                                % self.ports[8080])
        self.assertEqual(status, 200, body)
        topo = json.loads(body)
        self.assertEqual(topo["clusterSize"], 1)
        self.assertEqual(len(topo["brokers"]), 1)

    def gateway_addr(self, k, kind):
        return "127.0.0.1:%d" % self.gateways[k][kind]

    def served_by(self, entries):
        """The upstream that finally answered each request (the last one
        in $upstream_addr, which lists every upstream tried)."""
        return [e.split(",")[-1].strip() for e in entries]

    # -- tests (run in name order) -------------------------------------------

    def test_1_balanced_over_both_gateways(self):
        for _ in range(REQUESTS):
            self.zbctl_status()
            self.rest_topology()
        grpc = self.served_by(upstreams_settled(self.log_grpc, REQUESTS))
        rest = self.served_by(upstreams_settled(
            self.log_rest, self.rest_skip + REQUESTS)[self.rest_skip:])
        self.assertGreaterEqual(len(grpc), REQUESTS)
        self.assertEqual(len(rest), REQUESTS)
        for k in range(2):
            self.assertIn(self.gateway_addr(k, "grpc"), grpc,
                          "gateway %d got no gRPC call" % k)
            self.assertIn(self.gateway_addr(k, "rest"), rest,
                          "gateway %d got no REST request" % k)

    def test_2_management_port(self):
        status, _ = http_get("http://127.0.0.1:%d/ready" % self.ports[9600])
        self.assertEqual(status, 204)
        status, body = http_get("http://127.0.0.1:%d/actuator/partitions"
                                % self.ports[9600])
        self.assertEqual(status, 200, body)
        self.assertIn("1", json.loads(body))

    def test_3_failover_when_a_gateway_dies(self):
        gw0 = self.gateways[0]["proc"]
        gw0.send_signal(signal.SIGKILL)
        gw0.wait(timeout=10)
        grpc_before = settled_count(self.log_grpc)
        rest_before = settled_count(self.log_rest)
        for _ in range(REQUESTS):
            self.zbctl_status()
            self.rest_topology()
        grpc = self.served_by(upstreams_settled(
            self.log_grpc, grpc_before + REQUESTS)[grpc_before:])
        rest = self.served_by(upstreams_settled(
            self.log_rest, rest_before + REQUESTS)[rest_before:])
        self.assertGreaterEqual(len(grpc), REQUESTS)
        self.assertEqual(len(rest), REQUESTS)
        self.assertEqual(set(grpc), {self.gateway_addr(1, "grpc")}, grpc)
        self.assertEqual(set(rest), {self.gateway_addr(1, "rest")}, rest)


if __name__ == "__main__":
    unittest.main()
