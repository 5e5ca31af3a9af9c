"""test_exporters.py: exporting to two real PostgreSQL stores from a
3-broker cluster (suite 'cluster', test 'cluster-exporters').

Data flow: two PostgreSQL servers are started on loopback ports
(tests/exporter/pg_server.sh: initdb in a temporary directory) as the
region-0 and region-1 stores -> 3 brokers (3 partitions, replication
factor 3) are started with exporters region0 and region1 (type postgresql,
TANDEM_BROKER_EXPORTERS_<ID>_* environment) -> clients publish messages
and run process instances through the gateway -> the partition leaders'
exporter directors write every committed record to both stores -> the
test reads the stores with psql and compares.

What must hold (issue 5):
- after a workload both stores hold exactly the same records, and every
  acknowledged message is there (nothing missing, nothing duplicated: the
  stores' primary key is (partition_id, position));
- a partition leader killed with SIGKILL mid-export: nothing missing or
  duplicated once the new leader's director has caught up;
- a store stopped for a while: processing never stops (publishes are
  acknowledged), and once the store is back it catches up.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
PG_SERVER = os.path.join(os.path.dirname(HERE), "exporter", "pg_server.sh")
PSQL = shutil.which("psql")
CATCH_UP_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Store:
    """One throw-away PostgreSQL server."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="tandem-pg-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.start()

    def start(self):
        subprocess.run(["bash", PG_SERVER, "start", self.dir, str(self.port)],
                       check=True, timeout=120, capture_output=True)

    def stop(self):
        subprocess.run(["bash", PG_SERVER, "stop", self.dir], timeout=120,
                       capture_output=True)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return ("host=127.0.0.1 port=%d user=postgres dbname=postgres "
                "connect_timeout=5" % self.port)

    def query(self, sql):
        """Rows of sql as lists of strings ([] if the table is missing)."""
        res = subprocess.run(
            [PSQL, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-At", "-F", "|", "-c", sql],
            capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            if "does not exist" in res.stderr:
                return []
            raise AssertionError("psql: %s" % res.stderr)
        return [line.split("|") for line in res.stdout.splitlines() if line]

    def records(self):
        """{(partition, position)} of every exported record."""
        return {(int(p), int(pos)) for p, pos in self.query(
            "SELECT partition_id, position FROM tandem.records")}

    def message_keys(self):
        return {int(k) for (k,) in self.query(
            "SELECT key FROM tandem.records WHERE value_type = 'MESSAGE' "
            "AND intent = 'PUBLISHED'")}


@unittest.skipUnless(PSQL, "psql is not installed")
class ExportersTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        harness.zbctl_path()
        cls.stores = [Store("region0"), Store("region1")]
        for s in cls.stores:
            cls.addClassCleanup(s.destroy)
        env = {}
        for i, s in enumerate(cls.stores):
            prefix = "TANDEM_BROKER_EXPORTERS_REGION%d_" % i
            env[prefix + "TYPE"] = "postgresql"
            env[prefix + "ARGS_URL"] = s.url
            env[prefix + "ARGS_BATCH_DELAY"] = "100ms"
        cls.cluster = harness.Cluster.up(brokers=3, partitions=3,
                                         replication_factor=3,
                                         election_timeout_ms=300,
                                         heartbeat_interval_ms=50,
                                         extra_env=env)
        cls.addClassCleanup(cls.cluster.down)
        cls.addr = cls.cluster.gateway_address()
        harness.wait_until(
            lambda: all(len(v["leaders"]) == 1 for v in
                        harness.topology_summary(
                            cls.cluster.topology()).values()),
            60, what="a leader for every partition")

    def wait_stores_equal(self, must_have_keys=()):
        """Waits until both stores hold the same records, including every
        key of must_have_keys as a PUBLISHED message; returns the records."""
        must = set(must_have_keys)

        def same():
            a, b = (s.records() for s in self.stores)
            if a != b or not a:
                return False
            keys = self.stores[0].message_keys()
            return a if must <= keys else False

        return harness.wait_until(same, CATCH_UP_S, interval_s=0.5,
                                  what="both stores to hold the same records")

    def test_1_stores_hold_the_same_records(self):
        keys, failed = harness.publish_many(self.addr, 300, 16, 60, "exp1")
        self.assertEqual(failed, 0)
        records = self.wait_stores_equal(keys)
        for s in self.stores:
            self.assertEqual(s.message_keys() & set(keys), set(keys))
            # No duplicates: (partition, position) is the primary key, and
            # each message is one PUBLISHED record.
            dup = s.query("SELECT key, count(*) FROM tandem.records WHERE "
                          "value_type = 'MESSAGE' AND intent = 'PUBLISHED' "
                          "GROUP BY key HAVING count(*) > 1")
            self.assertEqual(dup, [])
        self.assertGreater(len(records), 600)

    def test_2_leader_killed_mid_export(self):
        gateway = self.cluster.state["gateways"][0]
        leaders = self.cluster.leaders()
        victim = next(n for p, n in sorted(leaders.items()) if n != gateway)
        import threading
        result = {}

        def load():
            result["acked"] = harness.publish_many(self.addr, 600, 8, 60,
                                                   "exp2")

        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.5)
        self.cluster.kill9(victim)
        t.join(90)
        keys, _ = result["acked"]
        self.cluster.restart(victim)
        self.wait_stores_equal(keys)
        for s in self.stores:
            self.assertEqual(s.message_keys() & set(keys), set(keys))

    def test_3_store_down_for_a_while(self):
        down = self.stores[1]
        down.stop()
        try:
            keys, failed = harness.publish_many(self.addr, 200, 8, 60, "exp3")
            self.assertEqual(failed, 0, "processing must not stop while a "
                             "store is down")
            harness.wait_until(
                lambda: set(keys) <= self.stores[0].message_keys(),
                CATCH_UP_S, interval_s=0.5,
                what="the live store to have the new messages")
        finally:
            down.start()
        self.wait_stores_equal(keys)

    def post(self, node, path):
        url = self.cluster.management_url(node) + path
        req = urllib.request.Request(url, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")

    def phases(self):
        out = {}
        for n in self.cluster.broker_ids:
            try:
                parts = self.cluster.partitions(n)
            except AssertionError:
                continue
            out[n] = {p["exporterPhase"] for p in parts.values()}
        return out

    def test_4_pause_and_resume(self):
        gateway = self.cluster.state["gateways"][0]
        other = next(n for n in self.cluster.broker_ids if n != gateway)
        status, body = self.post(other, "/actuator/exporting/pause")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"body": None, "status": 204,
                                "contentType": None})
        # The pause reaches every broker (the cluster configuration).
        harness.wait_until(
            lambda: all(v == {"PAUSED"} for v in self.phases().values())
            and len(self.phases()) == 3, 20,
            what="every partition of every broker PAUSED")
        before = [s.records() for s in self.stores]
        keys, failed = harness.publish_many(self.addr, 100, 8, 60, "exp4")
        self.assertEqual(failed, 0, "processing continues while paused")
        # It persists across a restart.
        self.cluster.kill9(other)
        self.cluster.restart(other)
        harness.wait_until(lambda: self.phases().get(other) == {"PAUSED"},
                           20, what="the restarted broker to be PAUSED")
        time.sleep(2)
        for s, b in zip(self.stores, before):
            self.assertEqual(s.records(), b, "no new rows while paused")
        status, body = self.post(gateway, "/actuator/exporting/resume")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], 204)
        harness.wait_until(
            lambda: all(v == {"EXPORTING"} for v in self.phases().values()),
            20, what="every partition EXPORTING again")
        self.wait_stores_equal(keys)


if __name__ == "__main__":
    unittest.main()
