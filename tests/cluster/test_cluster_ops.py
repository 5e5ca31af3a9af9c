"""test_cluster_ops.py: cluster changes that execute, end to end (suite
'cluster'): exporter disable/enable and force removal of a lost region.

Data flow: the test starts real brokers (harness.Cluster.up) -> sends
management requests to the coordinator's port (broker 0):
POST /actuator/exporters/{id}/disable|enable, POST
/actuator/cluster/brokers?force=true -> the brokers execute the change
(broker.c, "Executing cluster changes") and spread each completed
operation through the gossiped cluster configuration -> the test polls
GET /actuator/cluster (lastChange), GET /actuator/exporters,
GET /actuator/partitions, /v2/topology, and publishes with zbctl.

  ExporterChangeTest: 3 brokers, exporter "ops0" writing to a real
    PostgreSQL store (test_exporters.Store) and "ops1" pointing at a port
    nothing listens on, so it never acknowledges and holds every
    partition's exportedPosition at -1. Disabling ops1 lets the position
    follow ops0; enabling it with initializeFrom ops0 copies ops0's
    position. Also: 409 for a change while one runs, 400 for bad bodies.
  ForceRemoveTest: the dual-region cluster (8 brokers, RF 4); kill -9 the
    odd brokers (region 1); processing halts; force to [0,2,4,6]; the
    change completes, every partition elects a leader among the
    survivors, publishing works again, every partition has 2 replicas.
    Prints the time from the force request to the first publish that
    succeeds.
"""

import json
import os
import socket
import shutil
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_exporters  # noqa: E402

CHANGE_S = 60        # bound on a change completing
HALT_PROBE_S = 6     # one publish attempt while the region is lost
FAILOVER_S = 60      # bound on processing resuming after the force


http = harness.http


def small_cluster(test, replication_factor):
    """3 brokers, 3 partitions, fast elections, stopped at the end of
    test; returns (cluster, gateway address, broker 0's management URL)
    once every partition has a leader."""
    harness.zbctl_path()
    cluster = harness.Cluster.up(brokers=3, partitions=3,
                                 replication_factor=replication_factor,
                                 election_timeout_ms=300,
                                 heartbeat_interval_ms=50)
    test.addCleanup(cluster.down)
    harness.wait_until(lambda: len(cluster.leaders()) == 3, 60,
                       what="a leader for every partition")
    return cluster, cluster.gateway_address(), cluster.management_url(0)


def publish_in_background(addr, count, name):
    """Starts harness.publish_many (4 in flight, 60 s) on a thread; returns
    a function that waits for it and returns (acknowledged keys, number
    failed), or (None, None) if it did not finish."""
    result = {}

    def run():
        result["r"] = harness.publish_many(addr, count, 4, 60, name)

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join():
        t.join(90)
        return result.get("r", (None, None))
    return join


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_change_completed(mgmt, change_id, timeout_s=CHANGE_S):
    def done():
        status, body = http("GET", mgmt + "/actuator/cluster")
        if status != 200 or "pendingChange" in body:
            return False
        last = body.get("lastChange", {})
        return body if (last.get("id") == change_id and
                        last.get("status") == "COMPLETED") else False
    return harness.wait_until(done, timeout_s, interval_s=0.2,
                              what="change %d COMPLETED" % change_id)


def publish(address, key, timeout_s):
    """One zbctl publish; True when acknowledged."""
    try:
        res = harness.zbctl(["publish", "message", "ops", "--correlationKey",
                             str(key)], address, timeout_s=timeout_s,
                            check=False)
    except AssertionError:
        return False  # timed out
    return res.returncode == 0


def placement_of(topo):
    """{partition id: sorted replica node ids} of a /v2/topology."""
    return {p: v["replicas"]
            for p, v in harness.topology_summary(topo).items()}


@unittest.skipUnless(test_exporters.PSQL, "psql is not installed")
class ExporterChangeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        harness.zbctl_path()
        cls.store = test_exporters.Store("ops0")
        cls.addClassCleanup(cls.store.destroy)
        env = {
            "TANDEM_BROKER_EXPORTERS_OPS0_TYPE": "postgresql",
            "TANDEM_BROKER_EXPORTERS_OPS0_ARGS_URL": cls.store.url,
            "TANDEM_BROKER_EXPORTERS_OPS0_ARGS_BATCH_DELAY": "100ms",
            "TANDEM_BROKER_EXPORTERS_OPS1_TYPE": "postgresql",
            "TANDEM_BROKER_EXPORTERS_OPS1_ARGS_URL":
                ("host=127.0.0.1 port=%d user=postgres dbname=postgres "
                 "connect_timeout=1" % closed_port()),
        }
        cls.cluster = harness.Cluster.up(brokers=3, partitions=3,
                                         replication_factor=3,
                                         election_timeout_ms=300,
                                         heartbeat_interval_ms=50,
                                         extra_env=env)
        cls.addClassCleanup(cls.cluster.down)
        cls.addr = cls.cluster.gateway_address()
        cls.mgmt = cls.cluster.management_url(0)
        harness.wait_until(
            lambda: all(len(v["leaders"]) == 1 for v in
                        harness.topology_summary(
                            cls.cluster.topology()).values()),
            60, what="a leader for every partition")

    def exporters(self):
        status, body = http("GET", self.mgmt + "/actuator/exporters")
        self.assertEqual(status, 200, body)
        return {e["exporterId"]: e["status"] for e in body}

    def leader_positions(self):
        """{partition: exportedPosition} as each partition's leader
        reports it."""
        out = {}
        for node in self.cluster.broker_ids:
            for pid, st in self.cluster.partitions(node).items():
                if st.get("role") == "LEADER":
                    out[pid] = st.get("exportedPosition")
        return out

    def test_1_errors_change_nothing(self):
        version = http("GET", self.mgmt + "/actuator/cluster")[1]["version"]
        status, body = http("POST", self.mgmt + "/actuator/cluster/brokers",
                            b"[0, 1,", "application/json")
        self.assertEqual(status, 400, body)
        self.assertIn("message", body)
        status, body = http("POST", self.mgmt + "/actuator/cluster/brokers",
                            {"brokers": [0]})
        self.assertEqual(status, 400, body)
        status, body = http("POST", self.mgmt +
                            "/actuator/exporters/nosuch/disable")
        self.assertEqual(status, 400, body)
        # A dry run at a broker that is not the coordinator: planned
        # there, nothing recorded (a real change would be forwarded to the
        # coordinator, see CancelChangeTest).
        status, body = http("POST", self.cluster.management_url(1) +
                            "/actuator/exporters/ops1/disable?dryRun=true")
        self.assertEqual(status, 202, body)
        self.assertEqual(len(body["plannedChanges"]), 9)
        self.assertEqual(
            http("GET", self.mgmt + "/actuator/cluster")[1]["version"],
            version)

    def test_2_disable_then_enable_from_another(self):
        keys, failed = harness.publish_many(self.addr, 60, 8, 60, "ops")
        self.assertEqual(failed, 0)
        self.assertEqual(self.exporters(),
                         {"ops0": "ENABLED", "ops1": "ENABLED"})
        # ops1 never acknowledges: every partition is held at -1.
        self.assertTrue(all(v == -1 for v in
                            self.leader_positions().values()),
                        self.leader_positions())

        status, plan = http("POST", self.mgmt +
                            "/actuator/exporters/ops1/disable")
        self.assertEqual(status, 202, plan)
        ops = plan["plannedChanges"]
        self.assertEqual(len(ops), 9)  # 3 brokers x 3 partitions
        self.assertTrue(all(o["operation"] == "PARTITION_DISABLE_EXPORTER"
                            for o in ops))
        # Another change while this one may still run: 409 or, once it
        # completed, a plan; a second disable is idempotent either way.
        status, body = http("POST", self.mgmt +
                            "/actuator/exporters/ops0/disable")
        if status == 202:
            self.fail("a second change was started: %r" % body)
        self.assertIn(status, (409,), body)
        cluster = wait_change_completed(self.mgmt, plan["changeId"])
        for b in cluster["brokers"]:
            for p in b["partitions"]:
                states = {e["id"]: e["state"] for e in
                          p["config"]["exporting"]["exporters"]}
                self.assertEqual(states, {"ops0": "ENABLED",
                                          "ops1": "DISABLED"})
        self.assertEqual(self.exporters(),
                         {"ops0": "ENABLED", "ops1": "DISABLED"})
        # ops1 no longer counts: positions follow ops0's acknowledgements.
        positions = harness.wait_until(
            lambda: (lambda p: p if len(p) == 3 and
                     all(v is not None and v > 0 for v in p.values())
                     else False)(self.leader_positions()),
            CHANGE_S, interval_s=0.3,
            what="exportedPosition above -1 on every partition")

        status, plan = http("POST", self.mgmt +
                            "/actuator/exporters/ops1/enable",
                            {"initializeFrom": "ops0"})
        self.assertEqual(status, 202, plan)
        self.assertTrue(all(o["operation"] == "PARTITION_ENABLE_EXPORTER"
                            for o in plan["plannedChanges"]))
        wait_change_completed(self.mgmt, plan["changeId"])
        self.assertEqual(self.exporters(),
                         {"ops0": "ENABLED", "ops1": "ENABLED"})
        # ops1 starts from ops0's position (it cannot export further):
        # the partitions are not back at -1.
        after = self.leader_positions()
        for pid, pos in positions.items():
            self.assertIsNotNone(after.get(pid))
            self.assertGreaterEqual(after[pid], pos, after)
        # Enabling it again is refused.
        status, body = http("POST", self.mgmt +
                            "/actuator/exporters/ops1/enable")
        self.assertEqual(status, 400, body)
        self.assertIn("already enabled", body["message"])


class ScaleTest(unittest.TestCase):
    """3 brokers, 3 partitions, RF 3: scale down to brokers [0, 1] with
    replication factor 2 (partition leaves through joint consensus, a
    leader leaving its own group included) while clients keep publishing,
    then back up to [0, 1, 2] with RF 3 (broker 2 rejoins its partitions):
    the initial placement again, and processing never stopped."""

    def test_scale_down_and_up(self):
        cluster, addr, mgmt = small_cluster(self, 3)
        initial = placement_of(cluster.topology())

        load = publish_in_background(addr, 300, "down")
        status, plan = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?replicationFactor=2", ["0", "1"])
        self.assertEqual(status, 202, plan)
        kinds = [o["operation"] for o in plan["plannedChanges"]]
        self.assertEqual(kinds.count("PARTITION_LEAVE"), 3)
        self.assertEqual(kinds.count("BROKER_REMOVE"), 1)
        body = wait_change_completed(mgmt, plan["changeId"])
        keys, failed = load()
        self.assertEqual(sorted(b["id"] for b in body["brokers"]), [0, 1])
        harness.wait_until(
            lambda: placement_of(cluster.topology()) ==
            {p: [0, 1] for p in (1, 2, 3)}, CHANGE_S, interval_s=0.2,
            what="every partition on brokers 0 and 1")
        self.assertEqual(failed, 0, "publishing failed during the scale")
        self.assertEqual(len(keys), 300)

        load = publish_in_background(addr, 300, "up")
        status, plan = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?replicationFactor=3", ["0", "1", "2"])
        self.assertEqual(status, 202, plan)
        self.assertEqual([o["operation"] for o in
                          plan["plannedChanges"]].count("PARTITION_JOIN"), 3)
        wait_change_completed(mgmt, plan["changeId"])
        keys, failed = load()
        harness.wait_until(
            lambda: placement_of(cluster.topology()) == initial,
            CHANGE_S, interval_s=0.2, what="the initial placement")
        self.assertEqual(failed, 0, "publishing failed during the scale")

        # Rebalance: every partition's leader moves to its highest-priority
        # replica (the round-robin primary, broker (p - 1) % 3). Partition
        # 3's primary, broker 2, left and rejoined, so another broker leads
        # it now (priorities only order elections; they move no leader).
        want = {p: (p - 1) % 3 for p in (1, 2, 3)}
        harness.wait_until(lambda: len(cluster.leaders()) == 3, CHANGE_S,
                           what="a leader for every partition")
        self.assertNotEqual(cluster.leaders()[3], 2,
                            "broker 2 leads partition 3 before the rebalance")
        status, body = http("POST", mgmt + "/actuator/rebalance")
        self.assertEqual(status, 200, body)
        harness.wait_until(lambda: cluster.leaders() == want, CHANGE_S,
                           interval_s=0.2,
                           what="every partition led by its primary")


class RedistributeTest(unittest.TestCase):
    """3 brokers, 3 partitions, RF 2 (p1 on 0,1; p2 on 1,2; p3 on 2,0).
    Messages with ids and a long TTL are published first (they stay in
    their partition's state). Scaling down to [0, 1] moves partition 2 to
    broker 0 and partition 3 to broker 1, which never held them (empty
    replicas join as learners and get the state by snapshot and log),
    while clients publish; then to [0] with replication factor 1, so
    broker 0 alone holds every partition; brokers 1 and 2 are killed and
    broker 0 restarted. Re-publishing every message id is then rejected
    as a duplicate: the moved state is all there (nothing acknowledged
    lost). Finally back to [0, 1, 2] with RF 2: the initial placement."""

    MESSAGES = 24

    def publish_ids(self, addr):
        """-> {partition: [outcome...]} for each message id m<i>, outcome
        True (acknowledged), "dup" (AlreadyExists) or False."""
        out = {}
        for i in range(self.MESSAGES):
            res = harness.zbctl(["publish", "message", "moved",
                                 "--correlationKey", "k%d" % i,
                                 "--messageId", "m%d" % i, "--ttl", "1h"],
                                addr, timeout_s=20, check=False)
            text = res.stdout + res.stderr
            if res.returncode == 0:
                key = int(json.loads(res.stdout)["key"])
                out.setdefault(key >> 51, []).append(True)
            elif "AlreadyExists" in text:
                out.setdefault("dup", []).append(i)
            else:
                out.setdefault("failed", []).append((i, text[-300:]))
        return out

    def scale(self, mgmt, ids, rf):
        status, plan = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?replicationFactor=%d" % rf,
                            [str(n) for n in ids])
        self.assertEqual(status, 202, plan)
        body = wait_change_completed(mgmt, plan["changeId"])
        self.assertEqual(sorted(b["id"] for b in body["brokers"]), ids)
        return plan

    def test_scale_moves_partitions_to_new_brokers(self):
        cluster, addr, mgmt = small_cluster(self, 2)
        initial = placement_of(cluster.topology())
        self.assertEqual(initial, {1: [0, 1], 2: [1, 2], 3: [0, 2]})
        first = self.publish_ids(addr)
        self.assertEqual(sorted(k for k in first), [1, 2, 3], first)

        load = publish_in_background(addr, 200, "down")
        plan = self.scale(mgmt, [0, 1], 2)
        keys, failed = load()
        joins = sorted((o["brokerId"], o["partitionId"])
                       for o in plan["plannedChanges"]
                       if o["operation"] == "PARTITION_JOIN")
        self.assertEqual(joins, [(0, 2), (1, 3)])
        harness.wait_until(
            lambda: placement_of(cluster.topology()) ==
            {p: [0, 1] for p in (1, 2, 3)}, CHANGE_S, interval_s=0.2,
            what="every partition on brokers 0 and 1")
        self.assertEqual(failed, 0, "publishing failed during the move")
        self.assertEqual(len(keys), 200)

        self.scale(mgmt, [0], 1)
        cluster.kill9(1)
        cluster.kill9(2)
        cluster.kill9(0)
        cluster.restart(0)
        harness.wait_until(
            lambda: placement_of(cluster.topology()) ==
            {p: [0] for p in (1, 2, 3)} and
            len(cluster.leaders(exclude=(1, 2))) == 3,
            CHANGE_S, interval_s=0.2,
            what="broker 0 alone leading every partition")
        again = self.publish_ids(addr)
        self.assertEqual(sorted(again.get("dup", [])),
                         list(range(self.MESSAGES)),
                         "every message id must still be known: %r" % again)
        for i in range(6):
            self.assertTrue(publish(addr, "x%d" % i, 20), "publish x%d" % i)

        cluster.restart(1)
        cluster.restart(2)
        self.scale(mgmt, [0, 1, 2], 2)
        harness.wait_until(
            lambda: placement_of(cluster.topology()) == initial,
            CHANGE_S, interval_s=0.2, what="the initial placement")
        for i in range(6):
            self.assertTrue(publish(addr, "y%d" % i, 20), "publish y%d" % i)


class CancelChangeTest(unittest.TestCase):
    """3 brokers, 3 partitions, RF 2 (partition 3 on brokers 2 and 0):
    broker 1 is killed, then asked to join partition 3, which it cannot
    complete. DELETE /actuator/cluster/changes/{id} ends the stuck change
    CANCELLED; another change is then accepted and processing goes on."""

    def test_cancel_stuck_change(self):
        cluster, addr, mgmt = small_cluster(self, 2)
        self.assertEqual(placement_of(cluster.topology())[3], [0, 2])

        # Nothing to cancel: 400 naming why; a dry run: 501; a bad id: 400.
        status, body = http("DELETE", mgmt + "/actuator/cluster/changes/5")
        self.assertEqual(status, 400, body)
        self.assertIn("no configuration change is in progress",
                      body["message"])
        status, body = http("DELETE", mgmt + "/actuator/cluster/changes/5"
                            "?dryRun=true")
        self.assertEqual(status, 501, body)
        status, body = http("DELETE", mgmt + "/actuator/cluster/changes/x")
        self.assertEqual(status, 400, body)
        status, body = http("GET", mgmt + "/actuator/cluster")
        version = body["version"]

        cluster.kill9(1)
        status, plan = http("POST", mgmt + "/actuator/cluster/brokers/1"
                            "/partitions/3", {"priority": 1})
        self.assertEqual(status, 202, plan)
        change = plan["changeId"]
        time.sleep(2)
        status, body = http("GET", mgmt + "/actuator/cluster")
        self.assertEqual(body["pendingChange"]["id"], change, body)
        self.assertEqual(body["pendingChange"]["status"], "IN_PROGRESS")
        # Blocked: another change is refused while this one is stuck.
        status, body = http("POST", mgmt + "/actuator/cluster/brokers/0"
                            "/partitions/2", {})
        self.assertEqual(status, 409, body)

        # Another id than the pending change's: 400, nothing changes.
        status, body = http("DELETE", mgmt + "/actuator/cluster/changes/%d"
                            % (change + 7))
        self.assertEqual(status, 400, body)
        self.assertIn("the change in progress is %d" % change,
                      body["message"])

        status, body = http("DELETE", mgmt + "/actuator/cluster/changes/%d"
                            % change)
        self.assertEqual(status, 200, body)
        self.assertNotIn("pendingChange", body)
        self.assertEqual(body["lastChange"]["id"], change)
        self.assertEqual(body["lastChange"]["status"], "CANCELLED")
        self.assertGreater(body["version"], version)
        # Every live broker learns it (gossip), and partition 3 keeps its
        # two replicas: the join never completed.
        for node in (0, 2):
            url = cluster.management_url(node)
            harness.wait_until(
                lambda: (lambda b: "pendingChange" not in b and
                         b.get("lastChange", {}).get("status") ==
                         "CANCELLED")(http("GET", url +
                                           "/actuator/cluster")[1]),
                CHANGE_S, interval_s=0.2,
                what="broker %d sees the change cancelled" % node)
        status, body = http("GET", mgmt + "/actuator/cluster")
        hosts3 = sorted(b["id"] for b in body["brokers"]
                        if any(p["id"] == 3 for p in b["partitions"]))
        self.assertEqual(hosts3, [0, 2])

        # Not blocked any more: a new change is planned (dry run); broker
        # 1 comes back (partition 1 has its quorum again) and processing
        # goes on.
        cluster.restart(1)
        status, body = http("POST", mgmt + "/actuator/cluster/brokers/1"
                            "/partitions/3?dryRun=true", {})
        self.assertEqual(status, 202, body)
        for i in range(6):
            self.assertTrue(publish(addr, "c%d" % i, 20), "publish c%d" % i)
        self.assertEqual(placement_of(cluster.topology())[3], [0, 2])

        # Any broker takes a change: broker 2 is not the coordinator, so
        # it forwards the request to broker 0 and relays its answer (as
        # Zeebe's gateway does).
        m2 = cluster.management_url(2)
        status, plan = http("POST", m2 + "/actuator/cluster/brokers/1"
                            "/partitions/3", {"priority": 1})
        self.assertEqual(status, 202, plan)
        self.assertEqual([o["operation"] for o in plan["plannedChanges"]],
                         ["PARTITION_JOIN"])
        wait_change_completed(mgmt, plan["changeId"])
        harness.wait_until(
            lambda: placement_of(cluster.topology())[3] == [0, 1, 2],
            CHANGE_S, interval_s=0.2, what="broker 1 in partition 3")
        # The coordinator lost: the request is answered 502 naming it
        # (or 504 while the loss is not detected yet), nothing changes.
        cluster.kill9(0)
        time.sleep(4)
        status, body = http("DELETE", m2 + "/actuator/cluster/brokers/1"
                            "/partitions/3", timeout_s=30)
        self.assertIn(status, (502, 504), body)
        self.assertIn("broker 0", body["message"])
        status, body = http("GET", m2 + "/actuator/cluster")
        self.assertNotIn("pendingChange", body)


class ForceRemoveTest(unittest.TestCase):

    def test_force_remove_lost_region(self):
        harness.zbctl_path()
        cluster = harness.Cluster.up(dual_region=True,
                                     election_timeout_ms=300,
                                     heartbeat_interval_ms=50)
        self.addCleanup(cluster.down)
        addr = cluster.gateway_address(0)
        mgmt = cluster.management_url(0)
        harness.wait_until(
            lambda: len(cluster.leaders(0)) == 8, 60,
            what="a leader for every partition")
        self.assertTrue(publish(addr, "before", 20))
        initial = placement_of(cluster.topology(0))

        for node in (1, 3, 5, 7):
            cluster.kill9(node)
        # Processing halts: no partition has a quorum (2 of 4).
        self.assertFalse(publish(addr, "halted", HALT_PROBE_S))

        # Malformed: 400; a force keeping an unknown broker: 400.
        status, body = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?force=true", b"not json")
        self.assertEqual(status, 400, body)
        status, body = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?force=true", ["0", "2", "4", "6", "9"])
        self.assertEqual(status, 400, body)

        t0 = time.monotonic()
        status, plan = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?force=true", ["0", "2", "4", "6"])
        self.assertEqual(status, 202, plan)
        kinds = [o["operation"] for o in plan["plannedChanges"]]
        self.assertEqual(kinds.count("PARTITION_FORCE_RECONFIGURE"), 8)
        self.assertEqual(kinds.count("BROKER_REMOVE"), 4)
        # A concurrent change is refused while this one runs.
        status, body = http("POST", mgmt + "/actuator/exporters/x/disable")
        self.assertIn(status, (400, 409), body)
        status, body = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?force=true", ["0", "2"])
        self.assertIn(status, (202, 409), body)
        if status == 202:
            # Only possible once the first change completed; then it must
            # be a plan for [0, 2], and it starts a second change.
            self.fail("second force accepted: %r" % body)

        first_ok = None
        deadline = time.monotonic() + FAILOVER_S
        while first_ok is None and time.monotonic() < deadline:
            if publish(addr, "after", 5):
                first_ok = time.monotonic()
        self.assertIsNotNone(first_ok, "no publish succeeded within %ds "
                             "of the force" % FAILOVER_S)
        failover_s = first_ok - t0
        print("\nfailover: force request to first successful publish: "
              "%.2f s" % failover_s, file=sys.stderr)

        body = wait_change_completed(mgmt, plan["changeId"])
        completed_s = time.monotonic() - t0
        print("failover: force request to lastChange COMPLETED: %.2f s"
              % completed_s, file=sys.stderr)
        self.assertEqual(sorted(b["id"] for b in body["brokers"]),
                         [0, 2, 4, 6])
        replicas = {}
        for b in body["brokers"]:
            for p in b["partitions"]:
                replicas.setdefault(p["id"], []).append(b["id"])
        self.assertEqual(sorted(replicas), list(range(1, 9)))
        # The replication factor drops to 2: every partition keeps its two
        # surviving replicas.
        self.assertEqual({len(v) for v in replicas.values()}, {2}, replicas)

        harness.wait_until(
            lambda: len(cluster.leaders(0, exclude=(1, 3, 5, 7))) == 8,
            FAILOVER_S, interval_s=0.2,
            what="a leader for every partition among the survivors")
        leaders = cluster.leaders(0, exclude=(1, 3, 5, 7))
        for pid, node in leaders.items():
            self.assertIn(node, replicas[pid])
        # Every partition accepts commands: keys spread over partitions.
        for i in range(24):
            self.assertTrue(publish(addr, "k%d" % i, 20), "publish k%d" % i)
        # The topology the gateway serves reports the new cluster: 4
        # brokers and replication factor 2.
        harness.wait_until(
            lambda: (lambda t: (t["clusterSize"], t["replicationFactor"]))(
                cluster.topology(0)) == (4, 2),
            FAILOVER_S, interval_s=0.2,
            what="/v2/topology clusterSize 4 and replicationFactor 2")
        # Only the live members are listed (as Zeebe's gateway does).
        harness.wait_until(
            lambda: sorted(b["nodeId"] for b in
                           cluster.topology(0)["brokers"]) == [0, 2, 4, 6],
            FAILOVER_S, interval_s=0.2,
            what="/v2/topology lists brokers 0, 2, 4, 6 only")

        # Failback: region 1 comes back with empty data; its brokers hold
        # no partition until the scale joins them (inactive ones are not
        # reported), then every partition has its four replicas of the
        # initial round-robin placement again.
        for node in (1, 3, 5, 7):
            shutil.rmtree(cluster.broker(node)["data_dir"], ignore_errors=True)
            cluster.restart(node)
        t1 = time.monotonic()
        status, plan = http("POST", mgmt + "/actuator/cluster/brokers"
                            "?replicationFactor=4",
                            [str(n) for n in range(8)])
        self.assertEqual(status, 202, plan)
        kinds = [o["operation"] for o in plan["plannedChanges"]]
        self.assertEqual(kinds.count("BROKER_ADD"), 4)
        self.assertEqual(kinds.count("PARTITION_JOIN"), 16)
        body = wait_change_completed(mgmt, plan["changeId"])
        print("failback: scale request to lastChange COMPLETED: %.2f s"
              % (time.monotonic() - t1), file=sys.stderr)
        self.assertEqual(sorted(b["id"] for b in body["brokers"]),
                         list(range(8)))
        harness.wait_until(
            lambda: placement_of(cluster.topology(0)) == initial
            and (lambda t: (t["clusterSize"], t["replicationFactor"]))(
                cluster.topology(0)) == (8, 4),
            FAILOVER_S, interval_s=0.2,
            what="the initial placement, 8 brokers, replication factor 4")
        for i in range(8):
            self.assertTrue(publish(addr, "back%d" % i, 20), "publish %d" % i)


if __name__ == "__main__":
    unittest.main()
