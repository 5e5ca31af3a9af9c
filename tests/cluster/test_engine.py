"""test_engine.py: the engine end to end with the real zbctl (suite
'cluster', test 'cluster-engine').

Data flow: harness.Cluster.up starts 3 brokers (3 partitions, replication
factor 3) with tandem-local -> zbctl (tests/node_modules) deploys the BPMN
samples of tests/engine/testdata/bpmn, creates instances, activates,
completes and fails jobs, resolves incidents, cancels instances, sets
variables and publishes messages through the embedded gateway -> the
test checks zbctl's JSON output and exit codes, and how the process
continues (the next job appears, the instance ends).

The zeebe-node half (workers under leader kills) is test_workers.py.
"""

import json
import os
import time
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
BPMN = os.path.join(os.path.dirname(HERE), "engine", "testdata", "bpmn")


# zbctl 8.4 prints JSON for these commands by default; some also take
# --output json (the default there is human-readable text).
_OUTPUT_FLAG = set()


def zb_json(args, address, check=True, timeout_s=harness.ZBCTL_TIMEOUT_S):
    extra = ["--output", "json"] if args[0] in _OUTPUT_FLAG else []
    res = harness.zbctl(list(args) + extra, address, check=check,
                        timeout_s=timeout_s)
    if not check:
        return res
    return json.loads(res.stdout)


class EngineTest(unittest.TestCase):
    """One 3-broker cluster for all the zbctl scenarios."""

    @classmethod
    def setUpClass(cls):
        harness.zbctl_path()
        cls.cluster = harness.Cluster.up(brokers=3, partitions=3,
                                         replication_factor=3)
        cls.addClassCleanup(cls.cluster.down)
        cls.addr = cls.cluster.gateway_address()
        harness.wait_until(
            lambda: all(len(v["leaders"]) == 1 for v in
                        harness.topology_summary(
                            cls.cluster.topology()).values()),
            60, what="a leader for every partition")

    def deploy(self, name):
        out = zb_json(["deploy", "resource", os.path.join(BPMN, name)],
                      self.addr)
        procs = [d["process"] for d in out["deployments"] if "process" in d]
        self.assertTrue(procs, out)
        return out, procs[0]

    def activate(self, job_type, count=1, timeout="30s", wait_s=10,
                 worker="zbctl-test"):
        """Activates up to count jobs of job_type, retrying until one shows
        up or wait_s passes; returns the list of jobs."""
        deadline = time.monotonic() + wait_s
        while True:
            out = zb_json(["activate", "jobs", job_type, "--maxJobsToActivate",
                           str(count), "--timeout", timeout, "--worker",
                           worker, "--requestTimeout", "2s"], self.addr)
            jobs = out.get("jobs", [])
            if jobs or time.monotonic() >= deadline:
                return jobs
            time.sleep(0.1)

    # -- deploy ------------------------------------------------------------

    def test_01_deploy_versions(self):
        out, p = self.deploy("one-task.bpmn")
        self.assertEqual(p["bpmnProcessId"], "one-task")
        self.assertGreaterEqual(p["version"], 1)
        self.assertEqual(harness.message_key_partition(out["key"]), 1,
                         "deployments are processed on partition 1")
        # Identical resource: the same version and key.
        _, again = self.deploy("one-task.bpmn")
        self.assertEqual(again["version"], p["version"])
        self.assertEqual(again["processDefinitionKey"],
                         p["processDefinitionKey"])

    def test_02_deploy_invalid(self):
        res = harness.zbctl(["deploy", "resource",
                             os.path.join(BPMN, "invalid-unsupported-element.bpmn")],
                            self.addr, check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("InvalidArgument", res.stderr + res.stdout)

    # -- instances and jobs ------------------------------------------------

    def test_03_create_activate_complete(self):
        self.deploy("one-task.bpmn")
        created = [zb_json(["create", "instance", "one-task", "--variables",
                            json.dumps({"n": i})], self.addr)
                   for i in range(6)]
        keys = {c["processInstanceKey"] for c in created}
        self.assertEqual(len(keys), 6)
        partitions = {harness.message_key_partition(k) for k in keys}
        self.assertEqual(partitions, {1, 2, 3},
                         "instances are spread round-robin: %s" % partitions)
        seen = set()
        deadline = time.monotonic() + 20
        while len(seen) < 6 and time.monotonic() < deadline:
            for job in self.activate("work", count=6, wait_s=2):
                self.assertEqual(job["type"], "work")
                self.assertIn(job["processInstanceKey"], keys)
                self.assertIn("n", json.loads(job["variables"]))
                harness.zbctl(["complete", "job", str(job["key"]),
                               "--variables", json.dumps({"done": True})],
                              self.addr)
                seen.add(job["processInstanceKey"])
        self.assertEqual(seen, keys)

    def test_04_create_with_result(self):
        self.deploy("one-task.bpmn")
        import threading
        result = {}

        def create():
            result["out"] = zb_json(["create", "instance", "one-task",
                                     "--variables", '{"a": 1}',
                                     "--withResult"], self.addr,
                                    timeout_s=40)

        t = threading.Thread(target=create)
        t.start()
        jobs = []
        deadline = time.monotonic() + 20
        while not jobs and time.monotonic() < deadline:
            jobs = [j for j in self.activate("work", count=10, wait_s=2)
                    if json.loads(j["variables"]).get("a") == 1]
        self.assertTrue(jobs, "the with-result instance's job")
        for j in jobs:
            harness.zbctl(["complete", "job", str(j["key"]), "--variables",
                           '{"b": 2}'], self.addr)
        t.join(45)
        self.assertFalse(t.is_alive())
        out = result["out"]
        variables = json.loads(out["variables"])
        self.assertEqual(variables.get("a"), 1)
        self.assertEqual(variables.get("b"), 2)

    def test_05_fail_retries_backoff_incident_resolve(self):
        self.deploy("one-task.bpmn")
        created = zb_json(["create", "instance", "one-task", "--variables",
                           '{"fail": true}'], self.addr)
        pik = created["processInstanceKey"]

        def mine():
            return [j for j in self.activate("work", count=20, wait_s=3)
                    if j["processInstanceKey"] == pik]

        jobs = harness.wait_until(mine, 20, what="the job")
        job = jobs[0]
        # Fail with a retry left and a backoff: not activatable at once.
        harness.zbctl(["fail", "job", str(job["key"]), "--retries", "1",
                       "--retryBackoff", "2s", "--errorMessage", "boom"],
                      self.addr)
        t0 = time.monotonic()
        again = harness.wait_until(mine, 20, interval_s=0.2,
                                   what="the job after its backoff")
        self.assertGreaterEqual(time.monotonic() - t0, 1.5,
                                "activatable before the backoff passed")
        self.assertEqual(again[0]["key"], job["key"])
        self.assertEqual(again[0]["retries"], 1)
        # No retries left: an incident; the job is not activatable.
        harness.zbctl(["fail", "job", str(job["key"]), "--retries", "0",
                       "--errorMessage", "no more"], self.addr)
        self.assertEqual(mine(), [])
        # Completing a failed job is refused (not activated).
        res = harness.zbctl(["complete", "job", str(job["key"])], self.addr,
                            check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("FailedPrecondition", res.stderr + res.stdout)
        # Give retries back and resolve: activatable again.
        harness.zbctl(["update", "retries", str(job["key"]), "--retries",
                       "2"], self.addr)
        # zbctl cannot list incidents; the incident's key was handed out
        # by the same partition shortly after the job's: try the keys
        # after it until one resolves (others answer NOT_FOUND).
        job_key = int(job["key"])
        resolved = False
        for k in range(job_key + 1, job_key + 40):
            r = harness.zbctl(["resolve", "incident", str(k)], self.addr,
                              check=False)
            if r.returncode == 0:
                resolved = True
                break
        self.assertTrue(resolved, "no incident key after %d" % job_key)
        back = harness.wait_until(mine, 20, what="the job after resolve")
        harness.zbctl(["complete", "job", str(back[0]["key"])], self.addr)

    def test_06_unknown_job_not_found(self):
        res = harness.zbctl(["complete", "job", str((2 << 51) + 999999)],
                            self.addr, check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("NotFound", res.stderr + res.stdout)

    def test_07_cancel_instance(self):
        self.deploy("one-task.bpmn")
        created = zb_json(["create", "instance", "one-task", "--variables",
                           '{"cancel": true}'], self.addr)
        pik = created["processInstanceKey"]
        harness.zbctl(["cancel", "instance", str(pik)], self.addr)
        res = harness.zbctl(["cancel", "instance", str(pik)], self.addr,
                            check=False)
        self.assertNotEqual(res.returncode, 0, "cancelled twice")
        self.assertIn("NotFound", res.stderr + res.stdout)
        jobs = [j for j in self.activate("work", count=50, wait_s=1)
                if j["processInstanceKey"] == pik]
        self.assertEqual(jobs, [], "a cancelled instance's job is gone")

    def test_08_set_variables(self):
        self.deploy("one-task.bpmn")
        created = zb_json(["create", "instance", "one-task", "--variables",
                           '{"x": 1}'], self.addr)
        pik = created["processInstanceKey"]
        harness.zbctl(["set", "variables", str(pik), "--variables",
                       '{"x": 2, "y": "z"}'], self.addr)
        jobs = harness.wait_until(
            lambda: [j for j in self.activate("work", count=50, wait_s=2)
                     if j["processInstanceKey"] == pik], 20, what="job")
        variables = json.loads(jobs[0]["variables"])
        self.assertEqual(variables["x"], 2)
        self.assertEqual(variables["y"], "z")
        res = harness.zbctl(["set", "variables", str(pik), "--variables",
                             '[1, 2]'], self.addr, check=False)
        self.assertNotEqual(res.returncode, 0)
        harness.zbctl(["complete", "job", str(jobs[0]["key"])], self.addr)

    def test_09_publish_message(self):
        out = zb_json(["publish", "message", "order", "--correlationKey",
                       "c-1", "--messageId", "m-1", "--ttl", "1m"], self.addr)
        self.assertIn("key", out)
        res = harness.zbctl(["publish", "message", "order",
                             "--correlationKey", "c-1", "--messageId", "m-1",
                             "--ttl", "1m"], self.addr, check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("AlreadyExists", res.stderr + res.stdout)

    def test_10_gateways_process(self):
        self.deploy("gateways.bpmn")
        big = zb_json(["create", "instance", "gateways", "--variables",
                       '{"amount": 500}'], self.addr)
        small = zb_json(["create", "instance", "gateways", "--variables",
                         '{"amount": 5}'], self.addr)
        expect = {big["processInstanceKey"]: "big",
                  small["processInstanceKey"]: "small"}

        def step(job_type, keys):
            got = {}
            deadline = time.monotonic() + 20
            while set(got) != set(keys) and time.monotonic() < deadline:
                for j in self.activate(job_type, count=20, wait_s=1):
                    if j["processInstanceKey"] in keys:
                        got[j["processInstanceKey"]] = j
                        harness.zbctl(["complete", "job", str(j["key"])],
                                      self.addr)
            self.assertEqual(set(got), set(keys), job_type)

        step("prepare", expect)
        step("big", [k for k, v in expect.items() if v == "big"])
        step("small", [k for k, v in expect.items() if v == "small"])
        step("left", expect)
        step("right", expect)


if __name__ == "__main__":
    unittest.main()
