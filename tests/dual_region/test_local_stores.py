"""test_local_stores.py: the parts of deploy/local/tandem-local the drill
needs (suite 'cluster', test 'dual-region-local'): the per-region
PostgreSQL stores of `up --dual-region`, the exporters they give every
broker, store-stop/-start/-wipe and start-broker --fresh.

Data flow: pure functions of tandem-local (loaded as a module through
tests/cluster/harness.py) on made-up layouts -> then tandem-local run as a
program against the fake broker (tests/cluster/fake/tandem-broker, copied
into a fake build directory; it ignores the exporters, so the test checks
the exporter environment in cluster.json) with two real PostgreSQL stores,
queried with psql -> `down` must leave no store running.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_TESTS = os.path.join(os.path.dirname(HERE), "cluster")
sys.path.insert(0, CLUSTER_TESTS)
import harness  # noqa: E402

tl = harness.load_tandem_local()
PSQL = shutil.which("psql")
FAKE = os.path.join(CLUSTER_TESTS, "fake", "tandem-broker")


def run_local(*args, timeout_s=120):
    return subprocess.run([harness.TANDEM_LOCAL] + list(args),
                          capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


class PureTest(unittest.TestCase):

    def test_store_layout_and_exporters(self):
        stores = tl.store_layout("/x", 2, [21000, 21001])
        self.assertEqual([s["region"] for s in stores], [0, 1])
        self.assertEqual(stores[1]["data_dir"], "/x/store-1/data")
        self.assertEqual(stores[1]["exporter"], "region1")
        self.assertIn("port=21001", tl.store_url(stores[1]))
        env = tl.store_exporter_env(stores)
        self.assertEqual(env["TANDEM_BROKER_EXPORTERS_REGION0_TYPE"],
                         "postgresql")
        self.assertIn("port=21000",
                      env["TANDEM_BROKER_EXPORTERS_REGION0_ARGS_URL"])
        self.assertEqual(env["TANDEM_BROKER_EXPORTERS_REGION1_ARGS_BATCH_DELAY"],
                         "100ms")
        self.assertEqual(len(env), 6)
        self.assertEqual(tl.store_exporter_env([]), {})

    def test_env_lines_name_the_stores(self):
        state = {"dir": "/x", "partitions": 8, "replication_factor": 4,
                 "regions": 2, "gateways": [0, 1], "brokers": [],
                 "stores": tl.store_layout("/x", 2, [21000, 21001])}
        for i in range(2):
            state["brokers"].append({
                "id": i, "region": i, "pid": 1, "config": "c", "log": "l",
                "data_dir": "d", "ports": dict.fromkeys(tl.PORT_NAMES, 1)})
        text = "\n".join(tl.env_lines(state))
        self.assertIn("TANDEM_STORE_REGION1_PORT=21001", text)
        self.assertIn("TANDEM_STORE_REGION0_DATA_DIR=/x/store-0/data", text)
        self.assertIn("TANDEM_STORE_REGION0_EXPORTER=region0", text)
        del state["stores"]  # a cluster.json written before stores existed
        self.assertNotIn("STORE", "\n".join(tl.env_lines(state)))

    def test_store_by_region_errors(self):
        with self.assertRaises(tl.UsageError) as cm:
            tl.store_by_region({"stores": []}, 0)
        self.assertIn("--dual-region", str(cm.exception))
        state = {"stores": tl.store_layout("/x", 2, [1, 2])}
        with self.assertRaises(tl.UsageError) as cm:
            tl.store_by_region(state, 5)
        self.assertIn("no store for region 5", str(cm.exception))
        self.assertEqual(tl.store_by_region(state, 1)["region"], 1)


@unittest.skipUnless(PSQL, "psql is not installed")
class FakeClusterStoresTest(unittest.TestCase):

    def setUp(self):
        # A fake build directory: BIN/broker/tandem-broker is the fake.
        self.bin = tempfile.mkdtemp(prefix="tandem-fake-bin-")
        self.addCleanup(shutil.rmtree, self.bin, True)
        os.makedirs(os.path.join(self.bin, "broker"))
        shutil.copy(FAKE, os.path.join(self.bin, "broker", "tandem-broker"))
        self.dir = tempfile.mkdtemp(prefix="tandem-local-stores-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.addCleanup(run_local, "down", "--dir", self.dir, "--timeout",
                        "2")

    def state(self):
        with open(os.path.join(self.dir, "cluster.json")) as f:
            return json.load(f)

    def count(self, store):
        res = subprocess.run(
            [PSQL, "-h", "127.0.0.1", "-p", str(store["port"]), "-U",
             "postgres", "-d", "postgres", "-At", "-c",
             "SELECT count(*) FROM drill_marker"],
            capture_output=True, text=True, timeout=30)
        return res

    def test_stores_lifecycle(self):
        res = run_local("up", "--dir", self.dir, "--bin", self.bin,
                        "--dual-region", "--timeout", "20")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("region 1 store: host=127.0.0.1", res.stdout)
        state = self.state()
        stores = state["stores"]
        self.assertEqual(len(stores), 2)
        self.assertIn("TANDEM_BROKER_EXPORTERS_REGION1_ARGS_URL",
                      state["broker_env"])
        for st in stores:
            self.assertTrue(tl.store_running(st), st)
        res = run_local("status", "--dir", self.dir)
        self.assertIn("store of region 1  port %d running"
                      % stores[1]["port"], res.stdout)

        # Something in store 1, then stop/start keeps it, wipe drops it.
        res = subprocess.run(
            [PSQL, "-h", "127.0.0.1", "-p", str(stores[1]["port"]), "-U",
             "postgres", "-d", "postgres", "-c",
             "CREATE TABLE drill_marker (x int); "
             "INSERT INTO drill_marker VALUES (1)"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        res = run_local("store-stop", "--dir", self.dir, "--region", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertFalse(tl.store_running(stores[1]))
        self.assertNotEqual(self.count(stores[1]).returncode, 0)
        res = run_local("store-stop", "--dir", self.dir, "--region", "1")
        self.assertEqual(res.returncode, 1)
        self.assertIn("not running", res.stderr)
        res = run_local("store-start", "--dir", self.dir, "--region", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.count(stores[1]).stdout.strip(), "1")
        res = run_local("store-start", "--dir", self.dir, "--region", "1")
        self.assertEqual(res.returncode, 1)
        self.assertIn("already running", res.stderr)
        res = run_local("store-wipe", "--dir", self.dir, "--region", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertFalse(os.path.exists(stores[1]["data_dir"]))
        res = run_local("store-start", "--dir", self.dir, "--region", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("new, empty", res.stdout)
        self.assertIn("does not exist", self.count(stores[1]).stderr)
        res = run_local("store-stop", "--dir", self.dir, "--region", "7")
        self.assertEqual(res.returncode, 2)
        self.assertIn("no store for region 7", res.stderr)

        # start-broker --fresh empties the data directory only.
        b3 = state["brokers"][3]
        marker = os.path.join(b3["data_dir"], "old-state")
        with open(marker, "w") as f:
            f.write("x")
        res = run_local("start-broker", "--dir", self.dir, "--id", "3",
                        "--fresh")
        self.assertEqual(res.returncode, 1)  # still running
        self.assertTrue(os.path.exists(marker))
        res = run_local("kill-broker", "--dir", self.dir, "--id", "3")
        self.assertEqual(res.returncode, 0, res.stderr)
        res = run_local("start-broker", "--dir", self.dir, "--id", "3",
                        "--fresh", "--timeout", "20")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("fresh", res.stdout)
        self.assertFalse(os.path.exists(marker))
        self.assertTrue(os.path.isdir(b3["data_dir"]))
        self.assertTrue(os.path.exists(b3["config"]))

        res = run_local("down", "--dir", self.dir)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("stopped the stores of regions [0, 1]", res.stdout)
        for st in stores:
            self.assertFalse(tl.store_running(st), st)

    def test_no_stores(self):
        res = run_local("up", "--dir", self.dir, "--bin", self.bin,
                        "--dual-region", "--no-stores", "--timeout", "20")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(self.state()["stores"], [])
        self.assertEqual(self.state()["broker_env"], {})
        res = run_local("store-start", "--dir", self.dir, "--region", "0")
        self.assertEqual(res.returncode, 2)
        self.assertIn("no stores", res.stderr)


if __name__ == "__main__":
    unittest.main()
