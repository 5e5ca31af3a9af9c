"""harness.py: the cluster test harness (tests/cluster, suite 'cluster').

Data flow: a test asks for a cluster (Cluster.up) -> deploy/local/tandem-local
up --dir <temp dir> starts the brokers and writes cluster.json/cluster.env
-> the harness reads both (brokers' ports, PIDs, configs) -> the test drives
the cluster through zbctl (the real Zeebe CLI from tests/node_modules),
HTTP GETs (REST /v2/topology, management /actuator/partitions) and process
control (kill -9 by PID, restart with the same config through tandem-local
start-broker) -> Cluster.down stops every broker by PID (tandem-local down,
which checks /proc/PID/cmdline first), also when the test failed: tests
register it with addCleanup right after `up`.

Environment:
  TANDEM_BUILD_DIR  the meson build directory (default: <repo>/build); the
                    broker is TANDEM_BUILD_DIR/broker/tandem-broker.
  TANDEM_ZBCTL      path of zbctl (default:
                    <repo>/tests/node_modules/zbctl/bin/zbctl-cli.linux).
  TANDEM_KEEP_DIRS  if set, cluster directories are kept for inspection.

Python 3.11 standard library only.
"""

import importlib.machinery
import importlib.util
import json
import os
import sys
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TANDEM_LOCAL = os.path.join(REPO, "deploy", "local", "tandem-local")
BUILD_DIR = os.environ.get("TANDEM_BUILD_DIR", os.path.join(REPO, "build"))
ZBCTL = os.environ.get(
    "TANDEM_ZBCTL",
    os.path.join(REPO, "tests", "node_modules", "zbctl", "bin",
                 "zbctl-cli.linux"))
ZBCTL_TIMEOUT_S = 20


def load_tandem_local():
    """deploy/local/tandem-local as a module (it has no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader("tandem_local",
                                                  TANDEM_LOCAL)
    spec = importlib.util.spec_from_loader("tandem_local", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def http_get(url, timeout_s=2.0):
    """GET url -> (status, body bytes); (None, reason) without a response."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, str(getattr(e, "reason", e)).encode()


def http(method, url, body=None, content_type="application/json",
         timeout_s=10.0, unreachable=False):
    """One management request -> (status, parsed JSON, or raw bytes when
    not JSON). body: bytes as is, anything else as JSON. Without an HTTP
    answer it raises, or with unreachable=True returns (None, reason)."""
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        if not unreachable:
            raise
        return None, str(getattr(e, "reason", e))
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def http_json(url, timeout_s=2.0):
    """GET url and parse JSON; raises AssertionError on non-200 or bad JSON."""
    status, body = http_get(url, timeout_s)
    if status != 200:
        raise AssertionError("GET %s: %s %r" % (url, status, body[:300]))
    try:
        return json.loads(body)
    except ValueError as e:
        raise AssertionError("GET %s: not JSON (%s): %r"
                             % (url, e, body[:300])) from None


def read_env_file(path):
    """cluster.env -> dict (values unquoted with shlex)."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition("=")
            words = shlex.split(value)
            env[name] = words[0] if words else ""
    return env


def wait_until(predicate, timeout_s, interval_s=0.05, what="condition"):
    """Polls predicate() until it returns a true value (returned) or the
    timeout passes (AssertionError naming `what` and the last value)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s "
                                 "(last: %r)" % (timeout_s, what, last))
        time.sleep(interval_s)


# --------------------------------------------------------------------------
# zbctl
# --------------------------------------------------------------------------

def zbctl_path():
    """The zbctl binary, or AssertionError with how to get it."""
    if not os.access(ZBCTL, os.X_OK):
        raise AssertionError(
            "zbctl not found at %s: run scripts/setup-deps (npm install in "
            "tests/, package zbctl) or set TANDEM_ZBCTL" % ZBCTL)
    return ZBCTL


def publish_many(address, count, concurrency, time_limit_s, name="load"):
    """Publishes count messages with the real zeebe-node client
    (publish_many.js), concurrency at a time, bounded by time_limit_s.
    Returns (acknowledged keys as ints, number failed)."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "publish_many.js")
    modules = os.path.join(os.path.dirname(here), "node_modules")
    if not os.path.isdir(os.path.join(modules, "zeebe-node")):
        raise AssertionError("zeebe-node not found in %s: run "
                             "scripts/setup-deps" % modules)
    env = dict(os.environ)
    env["NODE_PATH"] = modules
    res = subprocess.run(["node", script, address, str(count),
                          str(concurrency), str(time_limit_s), name],
                         capture_output=True, text=True, env=env,
                         timeout=time_limit_s + 30, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise AssertionError("publish_many.js failed (%d): %s"
                             % (res.returncode, res.stderr[-2000:]))
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["failed"]:
        sys.stderr.write("publish_many: %d failed, e.g. %s\n"
                         % (out["failed"], out.get("errors")))
    return [int(k) for k in out["acked"]], out["failed"]


def zbctl(args, address, timeout_s=ZBCTL_TIMEOUT_S, check=True):
    """Runs zbctl ARGS --insecure --address ADDRESS; returns the
    CompletedProcess (stdout/stderr as text). check: AssertionError with
    both streams on a non-zero exit."""
    cmd = [zbctl_path()] + list(args) + ["--insecure", "--address", address]
    env = dict(os.environ)
    for name in ("ZEEBE_ADDRESS", "ZEEBE_CLIENT_ID", "ZEEBE_CLIENT_SECRET",
                 "ZEEBE_AUTHORIZATION_SERVER_URL"):
        env.pop(name, None)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env,
                             timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s timed out after %ds"
                             % (" ".join(cmd), timeout_s)) from None
    if check and res.returncode != 0:
        raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                             % (" ".join(cmd), res.returncode, res.stdout,
                                res.stderr))
    return res


_STATUS_HEAD = {
    "Cluster size": "clusterSize",
    "Partitions count": "partitionsCount",
    "Replication factor": "replicationFactor",
    "Gateway version": "gatewayVersion",
}
_BROKER_RE = re.compile(r"^\s*Broker (\d+) - (\S+):(\d+)\s*$")
_VERSION_RE = re.compile(r"^\s*Version: (\S*)\s*$")
_PARTITION_RE = re.compile(r"^\s*Partition (\d+) : (\w+), (\w+)\s*$")


def parse_zbctl_status(text):
    """zbctl status output -> the /v2/topology shape: {clusterSize,
    partitionsCount, replicationFactor, gatewayVersion, brokers: [{nodeId,
    host, port, version, partitions: [{partitionId, role, health}]}]}, with
    role and health lower-cased. Raises ValueError on a line it does not
    know."""
    topo = {"brokers": []}
    broker = None
    for line in text.splitlines():
        if not line.strip() or line.strip() == "Brokers:":
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip() in _STATUS_HEAD:
            field = _STATUS_HEAD[key.strip()]
            value = value.strip()
            topo[field] = value if field == "gatewayVersion" else int(value)
            continue
        m = _BROKER_RE.match(line)
        if m:
            broker = {"nodeId": int(m.group(1)), "host": m.group(2),
                      "port": int(m.group(3)), "partitions": []}
            topo["brokers"].append(broker)
            continue
        m = _VERSION_RE.match(line)
        if m and broker is not None:
            broker["version"] = m.group(1)
            continue
        m = _PARTITION_RE.match(line)
        if m and broker is not None:
            broker["partitions"].append({"partitionId": int(m.group(1)),
                                         "role": m.group(2).lower(),
                                         "health": m.group(3).lower()})
            continue
        raise ValueError("unexpected zbctl status line: %r" % line)
    return topo


def topology_summary(topo):
    """A topology -> {partitionId: {"replicas": sorted node ids,
    "leaders": sorted node ids, "unhealthy": sorted node ids}}."""
    out = {}
    for b in topo["brokers"]:
        for p in b.get("partitions", []):
            entry = out.setdefault(p["partitionId"], {
                "replicas": [], "leaders": [], "unhealthy": []})
            entry["replicas"].append(b["nodeId"])
            if p["role"] == "leader":
                entry["leaders"].append(b["nodeId"])
            if p["health"] != "healthy":
                entry["unhealthy"].append(b["nodeId"])
    for entry in out.values():
        for v in entry.values():
            v.sort()
    return out


def message_key_partition(key):
    """Zeebe keys carry the partition id in their top bits (key >> 51)."""
    return int(key) >> 51


# --------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------

class Cluster:
    """One local cluster started by tandem-local in a temporary directory."""

    def __init__(self, directory, env, state):
        self.dir = directory
        self.env = env        # cluster.env as a dict
        self.state = state    # cluster.json as a dict

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def up(cls, brokers=None, partitions=None, replication_factor=None,
           dual_region=False, timeout_s=60, bin_dir=None, extra_env=None,
           election_timeout_ms=None, heartbeat_interval_ms=None):
        """Starts a cluster and waits until it is ready. Raises
        AssertionError with tandem-local's output if it fails (tandem-local
        has then stopped every broker it started)."""
        bin_dir = bin_dir or BUILD_DIR
        broker = os.path.join(bin_dir, "broker", "tandem-broker")
        if not os.access(broker, os.X_OK):
            raise AssertionError("%s is missing: build it first (ninja -C %s)"
                                 % (broker, bin_dir))
        directory = tempfile.mkdtemp(prefix="tandem-cluster-")
        cmd = [TANDEM_LOCAL, "up", "--dir", directory, "--bin", bin_dir,
               "--timeout", str(timeout_s)]
        if brokers is not None:
            cmd += ["--brokers", str(brokers)]
        if partitions is not None:
            cmd += ["--partitions", str(partitions)]
        if replication_factor is not None:
            cmd += ["--replication-factor", str(replication_factor)]
        if dual_region:
            cmd.append("--dual-region")
        if election_timeout_ms is not None:
            cmd += ["--election-timeout", str(election_timeout_ms)]
        if heartbeat_interval_ms is not None:
            cmd += ["--heartbeat-interval", str(heartbeat_interval_ms)]
        env = dict(os.environ)
        env.update(extra_env or {})
        res = subprocess.run(cmd, capture_output=True, text=True, env=env,
                             timeout=timeout_s + 60, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            # tandem-local stopped the brokers; keep nothing running.
            subprocess.run([TANDEM_LOCAL, "down", "--dir", directory],
                           capture_output=True, timeout=60)
            raise AssertionError("tandem-local up failed (%d)\nstdout: %s\n"
                                 "stderr: %s" % (res.returncode, res.stdout,
                                                 res.stderr))
        cluster = cls.load(directory)
        # Restarted brokers get the same environment (exporters, ...).
        cluster.extra_env = dict(extra_env or {})
        return cluster

    @classmethod
    def load(cls, directory):
        env = read_env_file(os.path.join(directory, "cluster.env"))
        with open(os.path.join(directory, "cluster.json"),
                  encoding="utf-8") as f:
            state = json.load(f)
        return cls(directory, env, state)

    def reload(self):
        fresh = Cluster.load(self.dir)
        self.env, self.state = fresh.env, fresh.state

    def down(self):
        """Stops every broker by PID (safe to call twice, never raises on a
        stopped cluster); removes the directory unless TANDEM_KEEP_DIRS."""
        subprocess.run([TANDEM_LOCAL, "down", "--dir", self.dir],
                       capture_output=True, timeout=60)
        if not os.environ.get("TANDEM_KEEP_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- addresses ---------------------------------------------------------

    @property
    def broker_ids(self):
        return [b["id"] for b in self.state["brokers"]]

    def broker(self, node_id):
        for b in self.state["brokers"]:
            if b["id"] == node_id:
                return b
        raise KeyError(node_id)

    def gateway_address(self, region=0):
        if self.state["regions"] > 1:
            return self.env["TANDEM_REGION%d_GATEWAY_ADDRESS" % region]
        return self.env["TANDEM_GATEWAY_ADDRESS"]

    def rest_url(self, region=0):
        if self.state["regions"] > 1:
            return self.env["TANDEM_REGION%d_REST_URL" % region]
        return self.env["TANDEM_REST_URL"]

    def management_url(self, node_id):
        return self.env["TANDEM_BROKER_%d_MANAGEMENT_URL" % node_id]

    def pid(self, node_id):
        return int(self.env["TANDEM_BROKER_%d_PID" % node_id])

    def live_gateway_region(self, exclude=()):
        """A region whose gateway broker is not in exclude."""
        for region, gw in enumerate(self.state["gateways"]):
            if gw not in exclude:
                return region
        raise AssertionError("every gateway broker is excluded")

    # -- observations ------------------------------------------------------

    def topology(self, region=0):
        return http_json(self.rest_url(region) + "/v2/topology")

    def zbctl_topology(self, region=0):
        res = zbctl(["status"], self.gateway_address(region))
        return parse_zbctl_status(res.stdout)

    def partitions(self, node_id):
        """GET /actuator/partitions of one broker: {id(int): status}."""
        body = http_json(self.management_url(node_id) +
                         "/actuator/partitions")
        return {int(k): v for k, v in body.items()}

    def leaders(self, region=0, exclude=()):
        """{partition id: leader node id} from /v2/topology, ignoring
        brokers in exclude (a killed broker may still be listed as leader
        until the gateway notices). Partitions without a unique leader are
        left out."""
        try:
            topo = self.topology(region)
        except AssertionError:
            return {}
        summary = topology_summary(topo)
        out = {}
        for pid, entry in summary.items():
            alive = [n for n in entry["leaders"] if n not in exclude]
            if len(alive) == 1:
                out[pid] = alive[0]
        return out

    # -- process control ---------------------------------------------------

    def kill9(self, node_id):
        """SIGKILL one broker by its PID (checked to be that broker)."""
        res = subprocess.run([TANDEM_LOCAL, "kill-broker", "--dir", self.dir,
                              "--id", str(node_id), "--signal", "KILL"],
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise AssertionError("kill-broker %d failed: %s%s"
                                 % (node_id, res.stdout, res.stderr))

    def restart(self, node_id, timeout_s=60):
        """Starts a stopped broker again with its config and waits for its
        /ready (and the gateways' topology); updates PIDs."""
        env = dict(os.environ)
        env.update(getattr(self, "extra_env", {}))
        res = subprocess.run([TANDEM_LOCAL, "start-broker", "--dir",
                              self.dir, "--id", str(node_id), "--timeout",
                              str(timeout_s)],
                             capture_output=True, text=True, env=env,
                             timeout=timeout_s + 30)
        self.reload()
        if res.returncode != 0:
            raise AssertionError("start-broker %d failed: %s%s"
                                 % (node_id, res.stdout, res.stderr))

    def log_tail(self, node_id, lines=30):
        path = self.broker(node_id)["log"]
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as e:
            return "(no log: %s)" % e
