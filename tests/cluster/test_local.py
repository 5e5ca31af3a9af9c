"""test_local.py: tests of deploy/local/tandem-local (suite 'cluster').

Two layers:
  * the pure parts, imported as a module: layout rules, port allocation,
    config rendering, cluster.env contents, the PID ownership check;
  * the commands end to end with tests/cluster/fake/tandem-broker standing
    in for the broker (a fake build directory holds it as
    broker/tandem-broker): up, status, kill-broker, start-broker, down, and
    the failure paths (never ready, early exit, refused config, a broker
    that ignores SIGTERM).
When the real broker has been built, its --print-config also checks every
rendered configuration (the keys must be the ones config.c accepts).

Every cluster is stopped in a cleanup, also when a test fails; every wait is
bounded.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

tl = harness.load_tandem_local()
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake",
                    "tandem-broker")
REAL_BROKER = os.path.join(harness.BUILD_DIR, "broker", "tandem-broker")


def run_local(*args, env=None, timeout=90):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([harness.TANDEM_LOCAL] + list(args),
                          capture_output=True, text=True, env=full_env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class PureTest(unittest.TestCase):
    def test_layout_defaults(self):
        lay = tl.cluster_layout(None, None, None, False)
        self.assertEqual((lay["brokers"], lay["partitions"],
                          lay["replication_factor"], lay["regions"],
                          lay["gateways"]), (3, 3, 3, 1, [0]))
        lay = tl.cluster_layout(None, None, None, True)
        self.assertEqual((lay["brokers"], lay["partitions"],
                          lay["replication_factor"], lay["regions"],
                          lay["gateways"]), (8, 8, 4, 2, [0, 1]))
        lay = tl.cluster_layout(1, 1, 1, False)
        self.assertEqual(lay["brokers"], 1)

    def test_layout_errors(self):
        for args in ((2, 3, 3, False),      # RF above brokers
                     (5, None, None, True),  # odd dual region
                     (2, None, 2, True),     # too small
                     (8, 8, 3, True),        # dual region needs RF 4
                     (65, 1, 1, False),
                     (3, 513, 3, False)):
            with self.assertRaises(tl.UsageError, msg=str(args)):
                tl.cluster_layout(*args)

    def test_allocate_ports_distinct_and_checked(self):
        taken = {20000 + i for i in range(0, 4000, 2)}
        asked = []

        def is_free(port):
            asked.append(port)
            return port not in taken

        ports = tl.allocate_ports(40, rng=random.Random(7), is_free=is_free,
                                  low=20000, high=24000)
        self.assertEqual(len(set(ports)), 40)
        self.assertFalse(set(ports) & taken)
        self.assertTrue(all(20000 <= p < 24000 for p in ports))
        self.assertTrue(set(ports) <= set(asked))
        with self.assertRaises(tl.LocalError):
            tl.allocate_ports(3, is_free=lambda p: p == 20001, low=20000,
                              high=20010)

    def test_port_is_free(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            self.assertFalse(tl.port_is_free(s.getsockname()[1]))

    def layout_state(self, dual):
        lay = tl.cluster_layout(None, None, None, dual)
        n = lay["brokers"]
        ports = tl.broker_ports(lay, list(range(21000, 21000 + 5 * n)))
        return lay, ports

    def test_render_config(self):
        lay, ports = self.layout_state(True)
        text = tl.render_config(lay, 3, ports, "/d/broker-3/data", 500, 100)
        for line in ("nodeId: 3", "clusterSize: 8", "partitionsCount: 8",
                     "replicationFactor: 4", "regions: 2", "regionId: 1",
                     "electionTimeout: 500ms", "heartbeatInterval: 100ms",
                     "enable: false", 'directory: "/d/broker-3/data"',
                     "host: 127.0.0.1"):
            self.assertIn(line, text)
        contacts = ", ".join("127.0.0.1:%d" % p["internal"] for p in ports)
        self.assertIn("initialContactPoints: [%s]" % contacts, text)
        self.assertIn("enable: true", tl.render_config(lay, 1, ports, "/d",
                                                       500, 100))
        # Every key must be accepted by the real broker when it exists.
        if os.access(REAL_BROKER, os.X_OK):
            d = tempfile.mkdtemp()
            self.addCleanup(shutil.rmtree, d)
            for dual in (False, True):
                lay, ports = self.layout_state(dual)
                for node in range(lay["brokers"]):
                    path = os.path.join(d, "b%d.yaml" % node)
                    with open(path, "w") as f:
                        f.write(tl.render_config(lay, node, ports,
                                                 os.path.join(d, "data"),
                                                 500, 100))
                    res = subprocess.run([REAL_BROKER, "--config", path,
                                          "--print-config"],
                                         capture_output=True, text=True,
                                         timeout=30)
                    self.assertEqual(res.returncode, 0, res.stderr)
                    self.assertIn("nodeId: %d" % node, res.stdout)

    def test_env_lines(self):
        lay, ports = self.layout_state(True)
        state = {"dir": "/tmp/it's here", "partitions": 8,
                 "replication_factor": 4, "regions": 2, "gateways": [0, 1],
                 "brokers": [{"id": i, "region": i % 2, "pid": 100 + i,
                              "ports": ports[i], "config": "/c/%d" % i,
                              "data_dir": "/d/%d" % i, "log": "/l/%d" % i}
                             for i in range(8)]}
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "cluster.env")
        with open(path, "w") as f:
            f.write("\n".join(tl.env_lines(state)) + "\n")
        env = harness.read_env_file(path)
        self.assertEqual(env["TANDEM_LOCAL_DIR"], "/tmp/it's here")
        self.assertEqual(env["TANDEM_GATEWAY_ADDRESS"],
                         "127.0.0.1:%d" % ports[0]["gateway"])
        self.assertEqual(env["TANDEM_REGION0_GATEWAY_ADDRESS"],
                         env["TANDEM_GATEWAY_ADDRESS"])
        self.assertEqual(env["TANDEM_REGION1_GATEWAY_ADDRESS"],
                         "127.0.0.1:%d" % ports[1]["gateway"])
        self.assertEqual(env["TANDEM_REGION1_REST_URL"],
                         "http://127.0.0.1:%d" % ports[1]["rest"])
        self.assertEqual(env["TANDEM_REGION1_MANAGEMENT_URL"],
                         "http://127.0.0.1:%d" % ports[1]["management"])
        for i in range(8):
            p = "TANDEM_BROKER_%d_" % i
            self.assertEqual(env[p + "PID"], str(100 + i))
            self.assertEqual(env[p + "COMMAND_ADDRESS"],
                             "127.0.0.1:%d" % ports[i]["command"])
            self.assertEqual(env[p + "INTERNAL_ADDRESS"],
                             "127.0.0.1:%d" % ports[i]["internal"])
            self.assertEqual(env[p + "MANAGEMENT_URL"],
                             "http://127.0.0.1:%d" % ports[i]["management"])
            self.assertEqual(env[p + "DATA_DIR"], "/d/%d" % i)
            self.assertEqual(env[p + "CONFIG"], "/c/%d" % i)
        # The file is valid shell: sourcing it gives the same value back.
        out = subprocess.run(["bash", "-c", 'set -eu; . "$1"; '
                              'printf %s "$TANDEM_LOCAL_DIR"', "-", path],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.stdout, "/tmp/it's here")
        # One region: no REGION variables.
        state["regions"], state["gateways"] = 1, [0]
        names = {line.split("=")[0] for line in tl.env_lines(state)}
        self.assertIn("TANDEM_REST_URL", names)
        self.assertFalse([n for n in names if n.startswith("TANDEM_REGION")
                          and n != "TANDEM_REGIONS"])

    def test_is_our_broker(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        other = subprocess.Popen(["sleep", "30"])
        self.addCleanup(other.wait)
        self.addCleanup(other.kill)
        self.assertFalse(tl.is_our_broker(other.pid, "/x.yaml"))
        cfg = os.path.join(d, "b.yaml")
        # A program named tandem-broker, run through its interpreter (argv:
        # python3 .../tandem-broker --config cfg), like the fake broker.
        sleeper = os.path.join(d, "tandem-broker")
        with open(sleeper, "w") as f:
            f.write("#!/usr/bin/env python3\nimport time\ntime.sleep(30)\n")
        os.chmod(sleeper, 0o755)
        named = subprocess.Popen([sleeper, "--config", cfg])
        self.addCleanup(named.wait)
        self.addCleanup(named.kill)
        harness.wait_until(lambda: tl.is_our_broker(named.pid, cfg), 5,
                           what="the sleeper to run")
        self.assertFalse(tl.is_our_broker(named.pid, cfg + ".other"))
        # Not named tandem-broker (argv[0..1] are python3 and -c).
        proc = subprocess.Popen([sys.executable, "-c",
                                 "import time; time.sleep(30)",
                                 "tandem-broker", "--config", cfg])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        self.assertFalse(tl.is_our_broker(proc.pid, cfg))
        # Killed but not reaped (a zombie): dead.
        named.kill()
        harness.wait_until(lambda: not tl.process_alive(named.pid), 5,
                           what="the sleeper to become a zombie")
        self.assertTrue(os.path.exists("/proc/%d" % named.pid))
        self.assertFalse(tl.is_our_broker(named.pid, cfg))
        self.assertFalse(tl.is_our_broker(0, cfg))


class FakeClusterTest(unittest.TestCase):
    """tandem-local against the fake broker."""

    def setUp(self):
        self.bin = tempfile.mkdtemp(prefix="tandem-fake-bin-")
        self.addCleanup(shutil.rmtree, self.bin, True)
        os.makedirs(os.path.join(self.bin, "broker"))
        shutil.copy(FAKE, os.path.join(self.bin, "broker", "tandem-broker"))
        self.dir = tempfile.mkdtemp(prefix="tandem-fake-cluster-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        # Registered after rmtree, so it runs before it: stop by PID even
        # when the test failed.
        self.addCleanup(run_local, "down", "--dir", self.dir, "--timeout",
                        "2")

    def up(self, *extra, env=None):
        return run_local("up", "--dir", self.dir, "--bin", self.bin,
                         "--timeout", "15", *extra, env=env)

    def pids(self):
        env = harness.read_env_file(os.path.join(self.dir, "cluster.env"))
        return {int(k.split("_")[2]): int(v) for k, v in env.items()
                if k.startswith("TANDEM_BROKER_") and k.endswith("_PID")}

    def assert_all_dead(self, pids):
        harness.wait_until(
            lambda: not any(tl.process_alive(p) for p in pids.values()), 10,
            what="every broker to exit")

    def test_up_status_kill_start_down(self):
        res = self.up()
        self.assertEqual(res.returncode, 0, res.stderr + res.stdout)
        cluster = harness.Cluster.load(self.dir)
        pids = self.pids()
        self.assertEqual(sorted(pids), [0, 1, 2])
        for node, pid in pids.items():
            cfg = cluster.env["TANDEM_BROKER_%d_CONFIG" % node]
            self.assertTrue(tl.is_our_broker(pid, cfg))
            self.assertTrue(os.path.isdir(
                cluster.env["TANDEM_BROKER_%d_DATA_DIR" % node]))
            status, _ = harness.http_get(cluster.management_url(node) +
                                         "/ready")
            self.assertEqual(status, 204)
        topo = cluster.topology()
        self.assertEqual(topo["clusterSize"], 3)
        self.assertEqual(cluster.broker(0)["gateway"], True)
        self.assertEqual(cluster.broker(1)["gateway"], False)

        res = run_local("status", "--dir", self.dir)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("topology complete", res.stdout)

        cluster.kill9(2)
        harness.wait_until(lambda: not tl.process_alive(pids[2]), 5,
                           what="broker 2 to die")
        res = run_local("status", "--dir", self.dir)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stdout, r"broker 2 .* down")
        res = run_local("kill-broker", "--dir", self.dir, "--id", "2")
        self.assertEqual(res.returncode, 1)
        self.assertIn("not running", res.stderr)

        cluster.restart(2, timeout_s=15)
        self.assertNotEqual(cluster.pid(2), pids[2])
        self.assertTrue(tl.process_alive(cluster.pid(2)))
        res = run_local("start-broker", "--dir", self.dir, "--id", "2")
        self.assertEqual(res.returncode, 1)
        self.assertIn("already running", res.stderr)
        res = run_local("start-broker", "--dir", self.dir, "--id", "9")
        self.assertEqual(res.returncode, 2)

        # up again on a running cluster is refused.
        res = self.up()
        self.assertEqual(res.returncode, 1)
        self.assertIn("still running", res.stderr)

        pids = self.pids()
        res = run_local("down", "--dir", self.dir)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assert_all_dead(pids)
        res = run_local("down", "--dir", self.dir)
        self.assertIn("no broker was running", res.stdout)

    def test_dual_region(self):
        res = self.up("--dual-region")
        self.assertEqual(res.returncode, 0, res.stderr + res.stdout)
        cluster = harness.Cluster.load(self.dir)
        self.assertEqual(len(self.pids()), 8)
        self.assertEqual(cluster.state["gateways"], [0, 1])
        for region in (0, 1):
            topo = cluster.topology(region)
            self.assertEqual(topo["partitionsCount"], 8)
        with open(cluster.env["TANDEM_BROKER_5_CONFIG"]) as f:
            text = f.read()
        self.assertIn("regionId: 1", text)
        self.assertIn("enable: false", text)

    def test_down_leaves_recycled_pid_alone(self):
        res = self.up("--brokers", "1", "--partitions", "1",
                      "--replication-factor", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        # Pretend broker 0's PID now belongs to an unrelated process.
        other = subprocess.Popen(["sleep", "30"])
        self.addCleanup(other.wait)
        self.addCleanup(other.kill)
        real = self.pids()[0]
        path = os.path.join(self.dir, "cluster.json")
        with open(path) as f:
            state = json.load(f)
        state["brokers"][0]["pid"] = other.pid
        with open(path, "w") as f:
            json.dump(state, f)
        res = run_local("down", "--dir", self.dir)
        self.assertEqual(res.returncode, 0)
        self.assertIsNone(other.poll())
        self.assertTrue(tl.process_alive(other.pid))
        # Put the real PID back so that cleanup stops it.
        state["brokers"][0]["pid"] = real
        with open(path, "w") as f:
            json.dump(state, f)

    def test_never_ready_times_out_and_stops_everything(self):
        res = run_local("up", "--dir", self.dir, "--bin", self.bin,
                        "--timeout", "2",
                        env={"TANDEM_FAKE_NEVER_READY": "1"})
        self.assertEqual(res.returncode, 1)
        self.assertIn("broker 1 is not ready", res.stderr)
        self.assertIn("fake broker 1 up", res.stderr)  # the log tail
        self.assert_all_dead(self.pids())

    def test_early_exit(self):
        res = self.up(env={"TANDEM_FAKE_EXIT": "2"})
        self.assertEqual(res.returncode, 1)
        self.assertIn("broker 2 (PID", res.stderr)
        self.assertIn("exited", res.stderr)
        self.assert_all_dead(self.pids())

    def test_refused_config(self):
        res = self.up(env={"TANDEM_FAKE_REFUSE": "0"})
        self.assertEqual(res.returncode, 1)
        self.assertIn("configuration", res.stderr)
        self.assertIn("refused by the fake", res.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir,
                                                     "cluster.json")))

    def test_sigkill_after_timeout(self):
        res = self.up("--brokers", "1", "--partitions", "1",
                      "--replication-factor", "1",
                      env={"TANDEM_FAKE_IGNORE_TERM": "0"})
        self.assertEqual(res.returncode, 0, res.stderr)
        pids = self.pids()
        start = time.monotonic()
        res = run_local("down", "--dir", self.dir, "--timeout", "1")
        self.assertEqual(res.returncode, 0)
        self.assertIn("SIGKILL", res.stdout)
        self.assert_all_dead(pids)
        self.assertLess(time.monotonic() - start, 10)

    def test_bad_flags(self):
        for args, needle in ((["up"], "--dir"),
                             (["up", "--dir", self.dir, "--brokers", "x"],
                              "not an integer"),
                             (["up", "--dir", self.dir, "--dual-region",
                               "--replication-factor", "3"], "4"),
                             (["up", "--dir", self.dir,
                               "--election-timeout", "100",
                               "--heartbeat-interval", "80"], "half"),
                             (["frobnicate"], "invalid choice"),
                             (["kill-broker", "--dir", self.dir, "--id", "0",
                               "--signal", "HUP"], "invalid choice")):
            res = run_local(*args)
            self.assertEqual(res.returncode, 2, args)
            self.assertIn(needle, res.stderr, args)
        res = run_local("status", "--dir", self.dir)
        self.assertEqual(res.returncode, 1)
        self.assertIn("no cluster was started", res.stderr)


class ParseTest(unittest.TestCase):
    """The zbctl status parser on the output format of zbctl 8.x."""

    SAMPLE = """Cluster size: 3
Partitions count: 2
Replication factor: 2
Gateway version: 0.1.0
Brokers:
  Broker 0 - 127.0.0.1:21001
    Version: 0.1.0
    Partition 1 : Leader, Healthy
    Partition 2 : Follower, Unhealthy
  Broker 1 - 127.0.0.1:21006
    Version: 0.1.0
    Partition 1 : Follower, Healthy
  Broker 2 - 127.0.0.1:21011
    Version: 0.1.0
"""

    def test_parse(self):
        topo = harness.parse_zbctl_status(self.SAMPLE)
        self.assertEqual(topo["clusterSize"], 3)
        self.assertEqual(topo["replicationFactor"], 2)
        self.assertEqual(len(topo["brokers"]), 3)
        self.assertEqual(topo["brokers"][1]["port"], 21006)
        self.assertEqual(topo["brokers"][2]["partitions"], [])
        summary = harness.topology_summary(topo)
        self.assertEqual(summary[1], {"replicas": [0, 1], "leaders": [0],
                                      "unhealthy": []})
        self.assertEqual(summary[2]["unhealthy"], [0])
        with self.assertRaises(ValueError):
            harness.parse_zbctl_status("Something else: 1\n")

    def test_key_partition(self):
        self.assertEqual(harness.message_key_partition(2251799813685249), 1)
        self.assertEqual(harness.message_key_partition(
            (3 << 51) + 17), 3)


if __name__ == "__main__":
    unittest.main()
