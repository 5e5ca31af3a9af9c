"""test_drill.py: the dual-region failover and failback drill of Zeebe's
operational procedure, end to end on one machine (suite 'cluster', test
'dual-region-drill'; docs/operations.md "Dual-region failover and failback
drill" is the same procedure by hand).

Data flow: deploy/local/tandem-local up --dual-region (through
tests/cluster/harness.py) starts 8 brokers (even ids region 0, odd ids
region 1, 8 partitions, RF 4), one PostgreSQL store per region and, on
every broker, exporters region0/region1 writing to them -> drill_clients.js
(zeebe-node) keeps creating instances of drill.bpmn through the surviving
region's gateway and completes their jobs, printing every acknowledgement
as a JSON line that a reader thread collects -> the test loses a region
(kill -9 of its brokers, its store stopped), checks that processing halts,
fails over (force removal to the survivors, disable the lost exporter),
fails back (fresh brokers, pause exporting, pg_dump | pg_restore of the
surviving store into a fresh store, enable with initializeFrom, resume,
scale back to 8 brokers RF 4) -> verifies with psql that every
acknowledged instance is in both stores exactly once with the same
records, and that the topology is the initial round-robin placement.

Each test prints its failover time (force request -> first instance
created after it completing) and failback time (fresh brokers started ->
scale change COMPLETED) to stderr, with a line per step ("step N ok").

Environment: TANDEM_BUILD_DIR (the broker), TANDEM_KEEP_DIRS (keep the
cluster directory). Python 3.11 standard library, psql/pg_dump/pg_restore,
node with tests/node_modules (zeebe-node, zbctl).
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))
import harness  # noqa: E402

PSQL = shutil.which("psql")
PG_DUMP = shutil.which("pg_dump")
PG_RESTORE = shutil.which("pg_restore")
NODE = shutil.which("node")
BPMN = os.path.join(HERE, "drill.bpmn")
CLIENTS_JS = os.path.join(HERE, "drill_clients.js")
NODE_MODULES = os.path.join(os.path.dirname(HERE), "node_modules")

BROKERS = list(range(8))
PARTITIONS = list(range(1, 9))
RF = 4
CREATORS = 2
PACE_MS = 150          # per creator: about 13 creations a second
CLIENT_LIMIT_S = 400   # the clients' own hard bound
DRAIN_S = 60           # after stop: time to finish outstanding instances
WARMUP_S = 4           # load before the region is lost
HALT_S = 4             # how long "processing halted" is observed
CHANGE_S = 90          # bound on one cluster change completing
FAILOVER_S = 60        # bound on processing resuming after the force
STORES_S = 90          # bound on both stores catching up
PAUSE_SETTLE_S = 30    # bound on exporter positions settling after pause
HTTP_S = 10.0


def http(method, url, body=None, timeout_s=HTTP_S):
    """-> (status, parsed JSON or raw bytes); (None, reason) without an
    HTTP answer."""
    return harness.http(method, url, body, timeout_s=timeout_s,
                        unreachable=True)


def round_robin_placement(brokers, partitions, rf):
    """{broker: sorted partitions}: partition p on brokers (p-1+i) mod n,
    i < rf (zeebe-facts 4.1; the table of Zeebe's dual-region procedure)."""
    n = len(brokers)
    out = {b: [] for b in brokers}
    for p in partitions:
        for i in range(rf):
            out[brokers[(p - 1 + i) % n]].append(p)
    return {b: sorted(ps) for b, ps in out.items()}


def step(name):
    print("drill: step %s ok (%s)" % (name, time.strftime("%H:%M:%S")),
          file=sys.stderr, flush=True)


class Store:
    """One region's PostgreSQL store, as tandem-local describes it in
    cluster.json ("stores")."""

    def __init__(self, spec):
        self.spec = spec
        self.port = spec["port"]
        self.region = spec["region"]

    def conn_args(self):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres"]

    def query(self, sql):
        """Rows as lists of strings; [] when the schema does not exist yet
        (an exporter creates it on first use)."""
        res = subprocess.run([PSQL] + self.conn_args() +
                             ["-At", "-F", "|", "-c", sql],
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            if "does not exist" in res.stderr:
                return []
            raise AssertionError("psql on the region %d store: %s"
                                 % (self.region, res.stderr.strip()))
        return [line.split("|") for line in res.stdout.splitlines() if line]

    def instance_records(self, keys):
        """{process instance key: sorted [(partition, position, value type,
        intent)]} for the records of those instances."""
        if not keys:
            return {}
        rows = self.query(
            "SELECT (value->>'processInstanceKey')::bigint, partition_id, "
            "position, value_type, intent FROM tandem.records WHERE "
            "record_type = 'EVENT' AND "
            "(value->>'processInstanceKey')::bigint IN (%s)"
            % ",".join(str(int(k)) for k in keys))
        out = {}
        for k, part, pos, vt, intent in rows:
            out.setdefault(int(k), []).append((int(part), int(pos), vt,
                                               intent))
        return {k: sorted(v) for k, v in out.items()}

    def exporter_positions(self):
        return sorted(tuple(r) for r in self.query(
            "SELECT exporter_id, partition_id, position FROM "
            "tandem.exporter_positions"))


class Clients:
    """drill_clients.js running against one gateway; a thread collects its
    JSON lines."""

    def __init__(self, address):
        env = dict(os.environ)
        env["NODE_PATH"] = NODE_MODULES
        self.proc = subprocess.Popen(
            [NODE, CLIENTS_JS, address, BPMN, str(CREATORS), str(PACE_MS),
             str(CLIENT_LIMIT_S), str(DRAIN_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env)
        self.lock = threading.Lock()
        self.created = {}    # key -> ack time (s since epoch)
        self.finished = {}   # key -> completion ack time
        self.failed = 0
        self.errors = []
        self.deployed = False
        self.done = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        # stderr is drained all along (the last lines kept), so that the
        # clients never block on a full pipe.
        self.err_lines = collections.deque(maxlen=50)
        self.err_thread = threading.Thread(target=self._read_err,
                                           daemon=True)
        self.err_thread.start()

    def _read_err(self):
        for line in self.proc.stderr:
            self.err_lines.append(line)

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                kind = ev.get("ev")
                if kind == "created":
                    self.created[int(ev["k"])] = ev["t"] / 1000.0
                elif kind == "finished":
                    self.finished[int(ev["k"])] = ev["t"] / 1000.0
                elif kind == "failed":
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(ev.get("e"))
                elif kind == "deployed":
                    self.deployed = True
                elif kind == "done":
                    self.done = ev

    def snapshot(self):
        with self.lock:
            return dict(self.created), dict(self.finished)

    def stop(self, timeout_s=DRAIN_S + 30):
        """Closes stdin (creators stop, the worker drains); waits."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.thread.join(timeout=10)
        return self.proc.returncode

    def stderr_tail(self):
        self.err_thread.join(timeout=5)
        return "".join(self.err_lines)[-2000:]

    def kill(self):
        """Cleanup: the process ends, every pipe is closed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.thread.join(timeout=10)
        self.err_thread.join(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


@unittest.skipUnless(PSQL and PG_DUMP and PG_RESTORE and NODE,
                     "needs psql, pg_dump, pg_restore and node")
class DualRegionDrill(unittest.TestCase):

    def setUp(self):
        harness.zbctl_path()
        if not os.path.isdir(os.path.join(NODE_MODULES, "zeebe-node")):
            self.fail("zeebe-node not found in %s: run scripts/setup-deps"
                      % NODE_MODULES)
        self.cluster = harness.Cluster.up(dual_region=True, timeout_s=90,
                                          election_timeout_ms=300,
                                          heartbeat_interval_ms=50)
        self.addCleanup(self.cluster.down)
        self.assertEqual(len(self.cluster.state.get("stores", [])), 2,
                         "tandem-local up --dual-region started no stores")
        harness.wait_until(lambda: len(self.cluster.leaders(0)) == 8, 60,
                           what="a leader for every partition")

    # -- helpers -----------------------------------------------------------

    def local(self, *args, timeout_s=120):
        res = subprocess.run([harness.TANDEM_LOCAL] + list(args) +
                             ["--dir", self.cluster.dir],
                             capture_output=True, text=True,
                             timeout=timeout_s)
        self.assertEqual(res.returncode, 0, "tandem-local %s: %s%s"
                         % (" ".join(args), res.stdout, res.stderr))
        return res.stdout

    def store(self, region):
        for spec in self.cluster.state["stores"]:
            if spec["region"] == region:
                return Store(spec)
        raise AssertionError("no store for region %d" % region)

    def wait_completed(self, mgmt, change_id, timeout_s=CHANGE_S):
        def done():
            status, body = http("GET", mgmt + "/actuator/cluster")
            if status != 200 or "pendingChange" in body:
                return False
            last = body.get("lastChange", {})
            if last.get("id") == change_id and \
                    last.get("status") not in ("COMPLETED", None,
                                               "IN_PROGRESS"):
                raise AssertionError("change %d ended %s: %r"
                                     % (change_id, last.get("status"), body))
            return body if (last.get("id") == change_id and
                            last.get("status") == "COMPLETED") else False
        return harness.wait_until(done, timeout_s, interval_s=0.2,
                                  what="change %d COMPLETED" % change_id)

    def post_change(self, mgmt, path, body=None):
        status, plan = http("POST", mgmt + path, body)
        self.assertEqual(status, 202, "POST %s: %s %r" % (path, status, plan))
        return plan

    def exporting(self, mgmt, what):
        status, body = http("POST", mgmt + "/actuator/exporting/" + what)
        self.assertEqual(status, 200, body)
        self.assertEqual(body.get("status"), 204, body)

    def wait_positions_settled(self, store):
        """Until the store's exporter positions are the same in two reads a
        second apart: nothing is in flight after a pause."""
        prev = [None]

        def settled():
            now = store.exporter_positions()
            same = now == prev[0]
            prev[0] = now
            return same
        harness.wait_until(settled, PAUSE_SETTLE_S, interval_s=1.0,
                           what="exporter positions to settle")

    def copy_store(self, src, dst):
        """pg_dump of src's tandem schema | pg_restore into dst."""
        dump = subprocess.Popen([PG_DUMP] + src.conn_args() +
                                ["-Fc", "-n", "tandem"],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        restore = subprocess.run([PG_RESTORE] + dst.conn_args() +
                                 ["--no-owner", "--exit-on-error"],
                                 stdin=dump.stdout, capture_output=True,
                                 text=True, timeout=120)
        dump.stdout.close()
        dump_err = dump.stderr.read().decode(errors="replace")
        dump.stderr.close()
        dump.wait(timeout=60)
        self.assertEqual(dump.returncode, 0, "pg_dump: " + dump_err)
        self.assertEqual(restore.returncode, 0,
                         "pg_restore: " + restore.stderr)

    # -- the drill ---------------------------------------------------------

    def drill(self, lost_region):
        survived = 1 - lost_region
        lost = [b for b in BROKERS if b % 2 == lost_region]
        kept = [b for b in BROKERS if b % 2 == survived]
        coordinator = kept[0]
        mgmt = self.cluster.management_url(coordinator)
        address = self.cluster.gateway_address(survived)
        lost_exporter = "region%d" % lost_region
        kept_exporter = "region%d" % survived
        lost_store, kept_store = self.store(lost_region), self.store(survived)

        clients = Clients(address)
        self.addCleanup(clients.kill)
        harness.wait_until(lambda: len(clients.snapshot()[1]) >= 10, 60,
                           what="10 instances finished before the loss")
        time.sleep(WARMUP_S)
        step("0 (load running: %d created)" % len(clients.snapshot()[0]))

        # 1. Lose the region: its brokers (one embeds its gateway) and its
        # store.
        for node in lost:
            self.cluster.kill9(node)
        self.local("store-stop", "--region", str(lost_region))
        time.sleep(1.0)  # acks of entries committed before the kill
        before = len(clients.snapshot()[0])
        time.sleep(HALT_S)
        after = len(clients.snapshot()[0])
        self.assertEqual(before, after, "instances were created while the "
                         "cluster had no quorum")
        step("1 (region %d lost, processing halted at %d created)"
             % (lost_region, after))

        # 2. Failover.
        t_force = time.time()
        plan = self.post_change(mgmt, "/actuator/cluster/brokers?force=true",
                                [str(b) for b in kept])
        kinds = [o["operation"] for o in plan["plannedChanges"]]
        self.assertEqual(kinds.count("PARTITION_FORCE_RECONFIGURE"), 8)
        self.assertEqual(kinds.count("BROKER_REMOVE"), 4)

        def first_new_finished():
            created, finished = clients.snapshot()
            new = [finished[k] for k, t in created.items()
                   if t >= t_force and k in finished]
            return min(new) if new else None
        t_first = harness.wait_until(first_new_finished, FAILOVER_S,
                                     interval_s=0.05,
                                     what="an instance created after the "
                                     "force to complete")
        failover_s = t_first - t_force
        self.wait_completed(mgmt, plan["changeId"])
        plan = self.post_change(mgmt, "/actuator/exporters/%s/disable"
                                % lost_exporter)
        self.wait_completed(mgmt, plan["changeId"])
        status, body = http("GET", mgmt + "/actuator/exporters")
        self.assertEqual(status, 200, body)
        self.assertEqual({e["exporterId"]: e["status"] for e in body},
                         {lost_exporter: "DISABLED",
                          kept_exporter: "ENABLED"})
        print("drill: failover (region %d lost): force request to the first "
              "new instance completed: %.2f s" % (lost_region, failover_s),
              file=sys.stderr, flush=True)
        step("2 (failover)")

        # 3. Failback.
        t_back = time.time()
        for node in lost:
            self.local("start-broker", "--id", str(node), "--fresh",
                       "--timeout", "60", timeout_s=90)
        self.cluster.reload()
        step("3a (fresh brokers %s started)" % lost)
        self.exporting(mgmt, "pause")
        self.wait_positions_settled(kept_store)
        self.local("store-wipe", "--region", str(lost_region))
        self.local("store-start", "--region", str(lost_region))
        self.copy_store(kept_store, lost_store)
        plan = self.post_change(mgmt, "/actuator/exporters/%s/enable"
                                % lost_exporter,
                                {"initializeFrom": kept_exporter})
        self.wait_completed(mgmt, plan["changeId"])
        self.exporting(mgmt, "resume")
        step("3b (store copied, %s enabled from %s, exporting resumed)"
             % (lost_exporter, kept_exporter))
        plan = self.post_change(mgmt, "/actuator/cluster/brokers"
                                "?replicationFactor=%d" % RF,
                                [str(b) for b in BROKERS])
        self.wait_completed(mgmt, plan["changeId"], timeout_s=240)
        failback_s = time.time() - t_back
        print("drill: failback (region %d recreated): fresh brokers started "
              "to scale change COMPLETED: %.2f s" % (lost_region, failback_s),
              file=sys.stderr, flush=True)
        step("3c (scaled back to 8 brokers, RF 4)")

        # 4. Verify.
        rc = clients.stop()
        self.assertEqual(rc, 0, clients.stderr_tail())
        created, finished = clients.snapshot()
        self.assertGreater(len(created), 0)
        unfinished = sorted(set(created) - set(finished))
        self.assertEqual(unfinished, [], "acknowledged instances never "
                         "completed (lost?)")
        keys = sorted(created)

        def stores_agree():
            a = lost_store.instance_records(keys)
            b = kept_store.instance_records(keys)
            if a != b or set(a) != set(keys):
                return False
            return a
        try:
            records = harness.wait_until(stores_agree, STORES_S,
                                         interval_s=1.0,
                                         what="both stores to hold every "
                                         "acknowledged instance")
        except AssertionError:
            a = lost_store.instance_records(keys)
            b = kept_store.instance_records(keys)
            self.fail("stores differ: %d/%d instances in %s, %d/%d in %s; "
                      "e.g. missing %s"
                      % (len(a), len(keys), lost_exporter, len(b), len(keys),
                         kept_exporter,
                         sorted(set(keys) - set(a) | set(keys) - set(b))[:5]))
        for k, recs in records.items():
            intents = [(vt, i) for _, _, vt, i in recs]
            # Exactly once: one creation, one job completion, and the
            # instance completed (its process element and its end) -- the
            # rows are keyed (partition, position), so a replay cannot
            # duplicate them.
            self.assertEqual(intents.count(("JOB", "CREATED")), 1, (k, recs))
            self.assertEqual(intents.count(("JOB", "COMPLETED")), 1,
                             (k, recs))
            self.assertEqual(intents.count(("PROCESS_INSTANCE_CREATION",
                                            "CREATED")), 1, (k, recs))
            # start event, service task, end event, the process.
            self.assertEqual(
                intents.count(("PROCESS_INSTANCE", "ELEMENT_COMPLETED")), 4,
                (k, recs))
        print("drill: %d acknowledged instances, all in both stores with "
              "the same %d records" % (len(keys), sum(map(len,
                                                          records.values()))),
              file=sys.stderr, flush=True)

        placement = round_robin_placement(BROKERS, PARTITIONS, RF)

        def topology_back(region):
            topo = self.cluster.topology(region)
            got = {b["nodeId"]: sorted(p["partitionId"]
                                       for p in b["partitions"])
                   for b in topo["brokers"]}
            summary = harness.topology_summary(topo)
            return (topo["clusterSize"] == 8 and
                    topo["replicationFactor"] == RF and got == placement and
                    all(len(summary[p]["leaders"]) == 1 for p in PARTITIONS))
        for region in (0, 1):
            harness.wait_until(lambda: topology_back(region), CHANGE_S,
                               interval_s=0.5,
                               what="region %d /v2/topology to be the "
                               "initial placement" % region)
        status, body = http("GET", mgmt + "/actuator/cluster")
        self.assertEqual(status, 200, body)
        got = {b["id"]: sorted(p["id"] for p in b["partitions"])
               for b in body["brokers"]}
        self.assertEqual(got, placement)
        step("4 (verified: RPO 0, placement restored)")

    def test_1_lose_region_1(self):
        self.drill(1)

    def test_2_lose_region_0(self):
        self.drill(0)


if __name__ == "__main__":
    unittest.main()
