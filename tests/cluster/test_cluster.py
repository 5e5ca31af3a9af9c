"""test_cluster.py: end-to-end tests of real tandem-broker clusters on
127.0.0.1 (suite 'cluster').

Each test class starts one cluster with deploy/local/tandem-local (via
harness.Cluster.up) in setUpClass and stops it by PID in a class cleanup,
which also runs when setUpClass or a test fails. Observations come from the
outside only: `zbctl status` (parsed), GET /v2/topology on the embedded
gateways, GET /actuator/partitions on each broker's management port, and
`zbctl publish message`.

  SingleBrokerTest  1 broker, 1 partition, RF 1: topology through zbctl
                    and REST, publish.
  ThreeBrokerTest   3 brokers, 3 partitions, RF 3: placement, leaders,
                    health; kill -9 of a leader (new leaders within 2 s,
                    publish works, the restarted broker catches up); no
                    acknowledged publish lost across leader kills.
  DualRegionTest    8 brokers, 2 regions, 8 partitions, RF 4: placement
                    equal to the dual-region table of Zeebe's operational
                    procedure (below), leaders, health, two gateways.

Timing: clusters use tandem-local's defaults (election timeout 500 ms,
heartbeat 100 ms); every wait is bounded; the suite runs in about two to
three minutes.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Failover bound of the issue: every partition has a leader again this long
# after a leader was killed.
FAILOVER_S = 2.0
# How long the gateway may take to learn the new leaders, and how long a
# restarted broker may take to catch up.
GATEWAY_CONVERGE_S = 10.0
CATCH_UP_S = 30.0
# Priority election makes each partition's primary its leader; allow a few
# election rounds after startup for that to settle.
LEADERS_SETTLE_S = 15.0

# Dual region, 8 brokers, 8 partitions, RF 4: the partitions of each broker
# as listed in Zeebe's dual-region operational procedure (the "all brokers
# rejoined" `zbctl status` output; round-robin placement, zeebe-facts 4.1).
DUAL_REGION_PLACEMENT = {
    0: [1, 6, 7, 8],
    1: [1, 2, 7, 8],
    2: [1, 2, 3, 8],
    3: [1, 2, 3, 4],
    4: [2, 3, 4, 5],
    5: [3, 4, 5, 6],
    6: [4, 5, 6, 7],
    7: [5, 6, 7, 8],
}

# 3 brokers, 3 partitions, RF 3: every broker hosts every partition.
THREE_BROKER_PLACEMENT = {0: [1, 2, 3], 1: [1, 2, 3], 2: [1, 2, 3]}


def primary(partition_id, cluster_size):
    """Round-robin primary of a partition (zeebe-facts 4.1)."""
    return (partition_id - 1) % cluster_size


def placement_of(topo):
    """{nodeId: sorted partition ids} of a topology."""
    return {b["nodeId"]: sorted(p["partitionId"] for p in b["partitions"])
            for b in topo["brokers"]}


def publish(address, name, correlation_key, message_id=None, ttl=None):
    """zbctl publish message; returns the acknowledged key (int)."""
    args = ["publish", "message", name, "--correlationKey", correlation_key]
    if message_id is not None:
        args += ["--messageId", message_id]
    if ttl is not None:
        args += ["--ttl", ttl]
    res = harness.zbctl(args, address)
    return parse_key(res.stdout)


def parse_key(stdout):
    """The "key" of zbctl's JSON answer (a string or a number)."""
    try:
        body = json.loads(stdout)
        return int(body["key"])
    except (ValueError, KeyError, TypeError) as e:
        raise AssertionError("zbctl publish printed no key (%s): %r"
                             % (e, stdout)) from None


class ClusterTestCase(unittest.TestCase):
    """Starts the class's cluster once; stops it by PID at the end."""

    CLUSTER = {}
    cluster = None

    @classmethod
    def setUpClass(cls):
        harness.zbctl_path()  # fail fast, with the fix, if zbctl is missing
        cls.cluster = harness.Cluster.up(**cls.CLUSTER)
        cls.addClassCleanup(cls.cluster.down)

    def describe(self, node_ids=None):
        """Log tails of brokers, for failure messages."""
        ids = node_ids if node_ids is not None else self.cluster.broker_ids
        return "\n".join("--- broker %d log ---\n%s"
                         % (n, self.cluster.log_tail(n)) for n in ids)

    # -- shared checks -----------------------------------------------------

    def assert_topology(self, topo, placement, source, expect_primaries):
        """Sizes, placement, one healthy leader per partition (the primary
        when expect_primaries), every replica healthy."""
        size = len(placement)
        partitions = sorted({p for ps in placement.values() for p in ps})
        rf = self.CLUSTER.get("replication_factor") or (
            4 if self.CLUSTER.get("dual_region") else 3)
        self.assertEqual(topo["clusterSize"], size, source)
        self.assertEqual(topo["partitionsCount"], len(partitions), source)
        self.assertEqual(topo["replicationFactor"], rf, source)
        self.assertEqual(placement_of(topo), placement, source)
        summary = harness.topology_summary(topo)
        for pid in partitions:
            entry = summary[pid]
            self.assertEqual(len(entry["leaders"]), 1,
                             "%s: partition %d leaders %s"
                             % (source, pid, entry["leaders"]))
            if expect_primaries:
                self.assertEqual(entry["leaders"], [primary(pid, size)],
                                 "%s: partition %d" % (source, pid))
            self.assertEqual(entry["unhealthy"], [],
                             "%s: partition %d" % (source, pid))
        for b in topo["brokers"]:
            self.assertEqual(b["host"], "127.0.0.1", source)
            self.assertEqual(
                b["port"], self.cluster.broker(b["nodeId"])["ports"]["command"],
                "%s: broker %d port" % (source, b["nodeId"]))

    def wait_primaries_lead(self, region=0):
        size = len(self.cluster.broker_ids)
        count = self.cluster.state["partitions"]
        want = {p: primary(p, size) for p in range(1, count + 1)}
        harness.wait_until(lambda: self.cluster.leaders(region) == want,
                           LEADERS_SETTLE_S,
                           what="each partition's primary to lead")

    def wait_all_ready(self):
        for n in self.cluster.broker_ids:
            url = self.cluster.management_url(n) + "/ready"
            harness.wait_until(lambda u=url: harness.http_get(u)[0] == 204,
                               CATCH_UP_S, what="GET %s = 204" % url)

    def check_management(self, node_ids, placement):
        """Every broker's /actuator/partitions lists exactly its partitions
        with a Raft role; /ready and /health are 204."""
        for n in node_ids:
            parts = self.cluster.partitions(n)
            self.assertEqual(sorted(parts), placement[n], "broker %d" % n)
            for pid, st in parts.items():
                self.assertIn(st["role"], ("LEADER", "FOLLOWER"),
                              "broker %d partition %d" % (n, pid))
                self.assertIsInstance(st["processedPosition"], int)
            for probe in ("/ready", "/health", "/startup"):
                status, body = harness.http_get(
                    self.cluster.management_url(n) + probe)
                self.assertEqual(status, 204, "broker %d %s: %r"
                                 % (n, probe, body))


class SingleBrokerTest(ClusterTestCase):
    CLUSTER = {"brokers": 1, "partitions": 1, "replication_factor": 1}

    def test_topology_and_publish(self):
        placement = {0: [1]}
        self.wait_primaries_lead()
        self.assert_topology(self.cluster.topology(), placement,
                             "/v2/topology", True)
        self.assert_topology(self.cluster.zbctl_topology(), placement,
                             "zbctl status", True)
        self.check_management([0], placement)
        key = publish(self.cluster.gateway_address(), "single", "k-1")
        self.assertEqual(harness.message_key_partition(key), 1)


class ThreeBrokerTest(ClusterTestCase):
    # With priority election the next replica campaigns after two
    # randomized election timeouts ([T, 2T) each), so failover takes up to
    # about 4T after the last heartbeat: 300 ms keeps the worst case near
    # 1.3 s, well inside FAILOVER_S.
    CLUSTER = {"brokers": 3, "partitions": 3, "replication_factor": 3,
               "election_timeout_ms": 300, "heartbeat_interval_ms": 60}

    def setUp(self):
        # Tests kill and restart brokers; each starts from a whole cluster.
        self.wait_all_ready()

    def gateway_id(self):
        return self.cluster.state["gateways"][0]

    def raft_leaders(self, alive):
        """{partition: leader} from the brokers' own views (management
        port), brokers in alive only; a partition with two self-declared
        leaders (an old term's leader not yet stepped down) is left out."""
        seen = {}
        for n in alive:
            try:
                parts = self.cluster.partitions(n)
            except AssertionError:
                continue
            for pid, st in parts.items():
                if st["role"] == "LEADER":
                    seen.setdefault(pid, []).append((st.get("term", 0), n))
        # The highest term's leader is the current one.
        return {pid: max(v)[1] for pid, v in seen.items()}

    def victim(self):
        """A partition leader that does not host the gateway (killing the
        gateway would leave the test without a client endpoint)."""
        leaders = self.cluster.leaders()
        candidates = sorted({n for n in leaders.values()
                             if n != self.gateway_id()})
        self.assertTrue(candidates, "every partition is led by the gateway "
                        "broker %d: %s" % (self.gateway_id(), leaders))
        return candidates[-1]

    def kill_and_wait_failover(self, victim):
        """kill -9 victim; assert every partition has a leader on a live
        broker within FAILOVER_S (raft view) and then at the gateway."""
        alive = [n for n in self.cluster.broker_ids if n != victim]
        count = self.cluster.state["partitions"]
        self.cluster.kill9(victim)
        killed_at = time.monotonic()
        deadline = killed_at + FAILOVER_S
        while True:
            leaders = self.raft_leaders(alive)
            if len(leaders) == count:
                break
            if time.monotonic() > deadline:
                self.fail("%.1fs after kill -9 of broker %d, partitions "
                          "without a leader: %s (leaders %s)\n%s"
                          % (FAILOVER_S, victim,
                             sorted(set(range(1, count + 1)) - set(leaders)),
                             leaders, self.describe(alive)))
            time.sleep(0.02)
        took = time.monotonic() - killed_at
        harness.wait_until(
            lambda: len(self.cluster.leaders(exclude=(victim,))) == count
            and victim not in self.cluster.leaders().values(),
            GATEWAY_CONVERGE_S,
            what="the gateway to list a live leader for every partition")
        return took

    def publish_until_ok(self, name, key):
        """The first publish after a failover may meet a stale leader at
        the gateway; retry for a bounded time."""
        last = []

        def attempt():
            try:
                return publish(self.cluster.gateway_address(), name, key)
            except AssertionError as e:
                last[:] = [str(e)]
                return None

        try:
            return harness.wait_until(attempt, GATEWAY_CONVERGE_S,
                                      interval_s=0.2, what="a publish")
        except AssertionError:
            self.fail("publish %s/%s kept failing: %s" % (name, key, last))

    def wait_caught_up(self, node):
        """The restarted broker's applied index reaches, for each of its
        partitions, the leader's applied index as read now."""
        target = {}
        leaders = self.raft_leaders([n for n in self.cluster.broker_ids
                                     if n != node])
        for pid, leader in leaders.items():
            target[pid] = self.cluster.partitions(leader)[pid]["appliedIndex"]

        def caught_up():
            try:
                parts = self.cluster.partitions(node)
            except AssertionError:
                return False
            behind = {pid: (parts.get(pid, {}).get("appliedIndex"), t)
                      for pid, t in target.items()
                      if parts.get(pid, {}).get("appliedIndex", -1) < t}
            return not behind or None

        harness.wait_until(caught_up, CATCH_UP_S,
                           what="broker %d to apply up to %s"
                           % (node, target))

    # -- tests ---------------------------------------------------------------

    def test_1_placement_leaders_health(self):
        self.wait_primaries_lead()
        self.assert_topology(self.cluster.topology(), THREE_BROKER_PLACEMENT,
                             "/v2/topology", True)
        self.assert_topology(self.cluster.zbctl_topology(),
                             THREE_BROKER_PLACEMENT, "zbctl status", True)
        self.check_management(self.cluster.broker_ids, THREE_BROKER_PLACEMENT)

    def test_1b_cluster_configuration(self):
        """Every broker serves the same versioned cluster configuration on
        GET /actuator/cluster, with Zeebe's round-robin priorities for 3
        brokers and 3 partitions (primary R=3, then 2, 1), and keeps it in
        its data directory."""
        expected = {0: {1: 3, 2: 1, 3: 2}, 1: {1: 2, 2: 3, 3: 1},
                    2: {1: 1, 2: 2, 3: 3}}
        bodies = []
        for n in self.cluster.broker_ids:
            body = harness.http_json(self.cluster.management_url(n) +
                                     "/actuator/cluster")
            self.assertEqual(body["version"], 1)
            got = {b["id"]: {p["id"]: p["priority"] for p in b["partitions"]}
                   for b in body["brokers"]}
            self.assertEqual(got, expected)
            bodies.append(body)
            path = os.path.join(self.cluster.broker(n)["data_dir"],
                                "cluster-config.json")
            with open(path, encoding="utf-8") as f:
                self.assertEqual(json.load(f)["version"], 1)
        self.assertTrue(all(b == bodies[0] for b in bodies))

    def test_2_leader_kill_failover_and_catch_up(self):
        victim = self.victim()
        # Something to replicate before and during the outage.
        for i in range(5):
            self.publish_until_ok("before-kill", "k-%d" % i)
        took = self.kill_and_wait_failover(victim)
        self.assertLess(took, FAILOVER_S)
        keys = [self.publish_until_ok("after-kill", "k-%d" % i)
                for i in range(10)]
        self.assertEqual(len(set(keys)), len(keys))
        self.assertEqual(
            {harness.message_key_partition(k) for k in keys} - {1, 2, 3},
            set(), "keys name partitions 1..3: %s" % keys)
        self.cluster.restart(victim)
        self.wait_caught_up(victim)
        # The gateway reconnects to the restarted broker and refreshes its
        # view within a few heartbeats.
        harness.wait_until(
            lambda: placement_of(self.cluster.topology())
            == THREE_BROKER_PLACEMENT,
            5, what="the gateway to see the restarted broker's partitions")
        topo = self.cluster.topology()
        self.assertEqual(placement_of(topo), THREE_BROKER_PLACEMENT)
        self.assertEqual(
            [e["unhealthy"] for e in harness.topology_summary(topo).values()],
            [[], [], []])

    def test_3_no_acknowledged_publish_lost(self):
        """Publish in rounds; between rounds kill -9 a leader, wait for
        failover, restart it. Checks, per partition (from the key's
        partition bits):
          * every acknowledged key is distinct, and keys only grow in ack
            order (a new leader that lost committed records would hand out
            keys again);
          * the commit index the leader reported right after the acks of a
            round (which covers those records) is never lost: at the end
            every replica's last index and applied index reach it."""
        rounds, per_round = 3, 15
        acked = []                 # (round, partition, key)
        watermark = {}             # partition -> commit index covering acks
        for r in range(rounds):
            for i in range(per_round):
                key = self.publish_until_ok("no-loss", "r%d-%d" % (r, i))
                acked.append((r, harness.message_key_partition(key), key))
            leaders = self.raft_leaders(self.cluster.broker_ids)
            for pid, leader in leaders.items():
                commit = self.cluster.partitions(leader)[pid]["commitIndex"]
                watermark[pid] = max(watermark.get(pid, 0), commit)
            if r == rounds - 1:
                break
            victim = self.victim()
            self.kill_and_wait_failover(victim)
            self.cluster.restart(victim)
            self.wait_caught_up(victim)

        keys = [k for _, _, k in acked]
        self.assertEqual(len(set(keys)), len(keys),
                         "a key was acknowledged twice: %s" % keys)
        by_partition = {}
        for _, pid, key in acked:
            self.assertIn(pid, (1, 2, 3), "key %d" % key)
            by_partition.setdefault(pid, []).append(key)
        for pid, ks in by_partition.items():
            self.assertEqual(ks, sorted(ks),
                             "partition %d keys not increasing in ack order"
                             % pid)

        def replicas_hold_watermark():
            lagging = []
            for n in self.cluster.broker_ids:
                parts = self.cluster.partitions(n)
                for pid, mark in watermark.items():
                    st = parts[pid]
                    if st["lastIndex"] < mark or st["appliedIndex"] < mark:
                        lagging.append((n, pid, st["lastIndex"],
                                        st["appliedIndex"], mark))
            return not lagging or None

        harness.wait_until(replicas_hold_watermark, CATCH_UP_S,
                           what="every replica to hold the acknowledged "
                           "records (index >= %s)" % watermark)


class DualRegionTest(ClusterTestCase):
    CLUSTER = {"dual_region": True}

    def test_placement_leaders_health(self):
        self.assertEqual(self.cluster.state["gateways"], [0, 1])
        for region in (0, 1):
            self.wait_primaries_lead(region)
            self.assert_topology(self.cluster.topology(region),
                                 DUAL_REGION_PLACEMENT,
                                 "region %d /v2/topology" % region, True)
            self.assert_topology(self.cluster.zbctl_topology(region),
                                 DUAL_REGION_PLACEMENT,
                                 "region %d zbctl status" % region, True)
        # Two replicas of every partition in each region (even/odd ids).
        summary = harness.topology_summary(self.cluster.topology(0))
        for pid, entry in summary.items():
            regions = [n % 2 for n in entry["replicas"]]
            self.assertEqual(sorted(regions), [0, 0, 1, 1],
                             "partition %d replicas %s"
                             % (pid, entry["replicas"]))
        self.check_management(self.cluster.broker_ids, DUAL_REGION_PLACEMENT)
        for region in (0, 1):
            key = publish(self.cluster.gateway_address(region), "dual",
                          "region-%d" % region)
            self.assertIn(harness.message_key_partition(key), range(1, 9))


class SnapshotCatchUpTest(ClusterTestCase):
    """3 brokers, 1 partition, RF 3, snapshots every second: a follower is
    stopped, the leader takes more entries than it keeps below its snapshot
    (1024 trailing entries) and compacts, and the restarted follower must
    come back through a chunked snapshot transfer (its snapshot index is
    then past everything it had) and catch up; no acknowledged key is
    lost or handed out twice."""

    CLUSTER = {"brokers": 3, "partitions": 1, "replication_factor": 3,
               "extra_env": {"TANDEM_BROKER_DATA_SNAPSHOTPERIOD": "1s"}}

    def test_follower_restored_from_snapshot(self):
        leaders = self.cluster.leaders()
        leader = leaders[1]
        gateway = self.cluster.state["gateways"][0]
        follower = max(n for n in self.cluster.broker_ids
                       if n not in (leader, gateway))
        before, failed = harness.publish_many(
            self.cluster.gateway_address(), 50, 8, 30, "before")
        self.assertEqual(failed, 0)
        stopped_at = self.cluster.partitions(follower)[1]["lastIndex"]
        self.cluster.kill9(follower)
        # One at a time: the leader batches concurrent commands into one
        # entry per processing round, and this needs many entries.
        during, failed = harness.publish_many(
            self.cluster.gateway_address(), 1600, 1, 90, "during")
        self.assertEqual(failed, 0, "publishes failed with one follower down")
        self.assertEqual(len(during), 1600)
        # The leader snapshots and compacts past the stopped follower.
        harness.wait_until(
            lambda: self.cluster.partitions(leader)[1]["snapshotIndex"]
            > stopped_at + 1024 + 1,
            20, what="the leader to snapshot past the stopped follower")
        self.cluster.restart(follower)
        commit = self.cluster.partitions(leader)[1]["commitIndex"]
        harness.wait_until(
            lambda: self.cluster.partitions(follower)[1]["appliedIndex"]
            >= commit,
            CATCH_UP_S, what="the restarted follower to catch up")
        snap = self.cluster.partitions(follower)[1]["snapshotIndex"]
        self.assertGreater(snap, stopped_at + 1024,
                           "the follower must have installed the leader's "
                           "snapshot, not replayed the log:\n%s"
                           % self.describe([follower]))
        keys = before + during
        self.assertEqual(len(set(keys)), len(keys))
        after, failed = harness.publish_many(
            self.cluster.gateway_address(), 20, 4, 30, "after")
        self.assertEqual(failed, 0)
        self.assertGreater(min(after), max(keys),
                           "keys after the catch-up continue the sequence")


class GatewayAndHealthTest(ClusterTestCase):
    """3 brokers, 1 partition, RF 3: a standalone tandem-gateway serves the
    cluster through any one broker's command API; a partition that lost its
    quorum becomes unhealthy (and the broker's /health 503) and healthy
    again when the quorum returns."""

    CLUSTER = {"brokers": 3, "partitions": 1, "replication_factor": 3}

    @staticmethod
    def free_port():
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def test_1_standalone_gateway(self):
        import signal
        import subprocess
        exe = os.path.join(harness.BUILD_DIR, "gateway", "tandem-gateway")
        self.assertTrue(os.access(exe, os.X_OK), exe)
        grpc_port, rest_port = self.free_port(), self.free_port()
        contact = self.cluster.env["TANDEM_BROKER_2_COMMAND_ADDRESS"]
        proc = subprocess.Popen(
            [exe, "--contact-point", contact, "--host", "127.0.0.1",
             "--grpc-port", str(grpc_port), "--rest-port", str(rest_port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        try:
            rest = "http://127.0.0.1:%d/v2/topology" % rest_port

            def complete():
                status, body = harness.http_get(rest)
                if status != 200:
                    return None
                topo = json.loads(body)
                summary = harness.topology_summary(topo)
                if len(topo["brokers"]) == 3 and summary.get(1, {}).get(
                        "leaders"):
                    return topo
                return None
            topo = harness.wait_until(complete, GATEWAY_CONVERGE_S,
                                      what="the standalone gateway's "
                                      "topology (learned from one contact)")
            self.assertEqual(topo["clusterSize"], 3)
            address = "127.0.0.1:%d" % grpc_port
            parsed = harness.parse_zbctl_status(
                harness.zbctl(["status"], address).stdout)
            self.assertEqual(len(parsed["brokers"]), 3, parsed)
            res = harness.zbctl(["publish", "message", "via-standalone",
                                 "--correlationKey", "sg-1"], address)
            key = int(json.loads(res.stdout)["key"])
            self.assertEqual(harness.message_key_partition(key), 1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
                self.fail("tandem-gateway did not stop on SIGTERM")
        self.assertEqual(proc.returncode, 0, out.decode(errors="replace"))

    def test_2_quorum_loss_is_unhealthy(self):
        survivor = self.cluster.state["gateways"][0]
        others = [n for n in self.cluster.broker_ids if n != survivor]
        for n in others:
            self.cluster.kill9(n)
        harness.wait_until(
            lambda: self.cluster.partitions(survivor)[1]["health"]
            == "UNHEALTHY",
            10, what="partition 1 on the survivor to become unhealthy")
        status, _ = harness.http_get(
            self.cluster.management_url(survivor) + "/health")
        self.assertEqual(status, 503)
        for n in others:
            self.cluster.restart(n)
        harness.wait_until(
            lambda: self.cluster.partitions(survivor)[1]["health"]
            == "HEALTHY",
            CATCH_UP_S, what="partition 1 to be healthy again")
        harness.wait_until(
            lambda: harness.http_get(self.cluster.management_url(survivor)
                                     + "/health")[0] == 204,
            10, what="/health to answer 204 again")


if __name__ == "__main__":
    unittest.main()
