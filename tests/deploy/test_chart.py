"""test_chart.py: the Helm chart (deploy/helm) checked without helm.

What is checked, and how:

1. yamllint --strict (rules in deploy/helm/.yamllint) on Chart.yaml, the
   values files and the dual-region files.
2. The chart is rendered by gotemplate.py (a Go-template subset, strict
   about missing values; see its docstring for what it does not model) for
   four installs: the defaults, region 0 and region 1 of the dual-region
   setup (with the output of dual-region/generate-values), and the
   embedded-gateway variant. Each rendering must lint clean and parse as
   Kubernetes objects with the expected kinds, selectors matching pod
   labels, probes on the management port, and one volume claim per broker.
3. For every broker pod of every install, the rendered ConfigMap and the
   pod's environment (fieldRef and $(VAR) references resolved as the
   kubelet does, HOSTNAME = pod name) are given to the real
   `tandem-broker --print-config`: it must accept them, and the node id it
   derives from the pod name must be ordinal * regions + regionId. Every
   key the chart sets must be documented in docs/configuration.md.
4. Dual region: the two releases together give node ids 0..clusterSize-1
   once each, every broker's contact point list is the same, and it holds
   exactly every pod's advertised address (so names in the template, the
   headless Service and the StatefulSet agree).
5. generate-values: output shape and its argument checks.
6. The renderer itself: a typo in a values path is an error, so check 3
   cannot pass on an empty rendering.

Exporter settings (TANDEM_BROKER_EXPORTERS_*) are passed to the broker
only once it accepts them (issue 5); until then that part is reported as
a skipped subtest.

Environment: TANDEM_BUILD_DIR (default <repo>/build). Python 3 with PyYAML.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gotemplate  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TANDEM_BUILD_DIR", os.path.join(REPO, "build"))
BROKER = os.path.join(BUILD, "broker", "tandem-broker")
HELM = os.path.join(REPO, "deploy", "helm")
CHART = os.path.join(HELM, "tandem")
DUAL = os.path.join(HELM, "dual-region")
LINT_CONFIG = os.path.join(HELM, ".yamllint")
CONFIG_DOC = os.path.join(REPO, "docs", "configuration.md")
NAMESPACES = ("tandem-london", "tandem-paris")


def yamllint(paths=(), text=None):
    """-> (exit code, output) of yamllint --strict on files or text."""
    cmd = [shutil.which("yamllint") or "yamllint", "--strict", "-f",
           "parsable", "-c", LINT_CONFIG]
    r = subprocess.run(cmd + (list(paths) or ["-"]), input=text,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def flatten(tree, prefix=""):
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are leaves."""
    out = {}
    for k, v in tree.items():
        path = prefix + k
        if isinstance(v, dict):
            out.update(flatten(v, path + "."))
        else:
            out[path] = v
    return out


def pod_env(container, pod_name):
    """The container's environment as the kubelet builds it: fieldRef
    metadata.name is the pod name, $(VAR) refers to earlier variables."""
    env = {}
    for e in container.get("env", []):
        if "valueFrom" in e:
            ref = e["valueFrom"]["fieldRef"]["fieldPath"]
            assert ref == "metadata.name", ref
            env[e["name"]] = pod_name
        else:
            env[e["name"]] = re.sub(
                r"\$\(([A-Za-z0-9_]+)\)",
                lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
    return env


class Install:
    """One rendered release: its objects by kind and name."""

    def __init__(self, namespace, value_files, release="tandem"):
        self.namespace = namespace
        self.docs = gotemplate.render_documents(CHART, release, namespace,
                                                value_files)
        self.text = "".join("---\n" + text for _, text in self.docs)
        self.objects = [yaml.safe_load(text) for _, text in self.docs]
        self.values = gotemplate.load_values(CHART, value_files)

    def of(self, kind):
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind, suffix):
        found = [o for o in self.of(kind)
                 if o["metadata"]["name"].endswith(suffix)]
        assert len(found) == 1, (kind, suffix, len(found))
        return found[0]

    def broker_yaml(self):
        return self.one("ConfigMap", "-broker")["data"]["broker.yaml"]

    def broker_pods(self):
        """-> [(pod name, env)] for every pod of the StatefulSet."""
        sts = self.one("StatefulSet", "-broker")
        container = sts["spec"]["template"]["spec"]["containers"][0]
        names = ["%s-%d" % (sts["metadata"]["name"], i)
                 for i in range(sts["spec"]["replicas"])]
        return [(n, pod_env(container, n)) for n in names]


def print_config(config_text, env, exclude_prefix=None):
    """Runs tandem-broker --print-config -> (rc, stdout + stderr)."""
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    run_env.update({k: v for k, v in env.items()
                    if exclude_prefix is None
                    or not k.startswith(exclude_prefix)})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(config_text)
        f.flush()
        r = subprocess.run([BROKER, "--config", f.name, "--print-config"],
                           env=run_env, capture_output=True, text=True,
                           timeout=30)
    return r.returncode, r.stdout + r.stderr


def derived_node_id(printed):
    m = re.search(r"# nodeId: (\d+) \(derived from podOrdinal\)", printed)
    assert m, printed
    return int(m.group(1))


def printed_contact_points(printed):
    """Derived contact points are comments, explicit ones a YAML list."""
    derived = re.findall(r'^\s*#   - "(.*)"$', printed, re.M)
    if derived:
        return derived
    cfg = yaml.safe_load(printed)
    return cfg["tandem"]["broker"]["cluster"]["initialContactPoints"]


class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tandem-chart-")
        cls.generated = os.path.join(cls.tmp, "generated-values.yaml")
        r = subprocess.run([os.path.join(DUAL, "generate-values"),
                            "--namespace0", NAMESPACES[0],
                            "--namespace1", NAMESPACES[1],
                            "--output", cls.generated],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        embedded = os.path.join(cls.tmp, "embedded.yaml")
        with open(embedded, "w") as f:
            f.write("gateway: {enabled: false}\n"
                    "broker: {embeddedGateway: true}\n")
        dual = [os.path.join(DUAL, "values.yaml")]
        cls.installs = {
            "default": Install("tandem", []),
            "region0": Install(NAMESPACES[0], dual + [
                os.path.join(DUAL, "region0.yaml"), cls.generated]),
            "region1": Install(NAMESPACES[1], dual + [
                os.path.join(DUAL, "region1.yaml"), cls.generated]),
            "embedded": Install("tandem", [embedded]),
        }

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def need_broker(self):
        if not os.access(BROKER, os.X_OK):
            self.skipTest("%s is not built" % BROKER)

    # -- 1. lint -------------------------------------------------------------

    def test_lint_sources(self):
        files = [os.path.join(CHART, "Chart.yaml"),
                 os.path.join(CHART, "values.yaml")]
        files += [os.path.join(DUAL, f) for f in sorted(os.listdir(DUAL))
                  if f.endswith(".yaml")]
        rc, out = yamllint(files)
        self.assertEqual(rc, 0, out)
        rc, out = yamllint([self.generated])
        self.assertEqual(rc, 0, out)

    def test_lint_catches_problems(self):
        rc, out = yamllint(text="a: 1\na: 2\nb: yes\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("duplication of key", out)

    # -- 2. renderings -------------------------------------------------------

    def test_renderings_lint_and_shape(self):
        for name, inst in self.installs.items():
            with self.subTest(install=name):
                rc, out = yamllint(text=inst.text)
                self.assertEqual(rc, 0, "%s:\n%s\n%s" % (name, out,
                                                          inst.text))
                for obj in inst.objects:
                    self.assertIn("apiVersion", obj)
                    self.assertTrue(obj["metadata"]["name"])
                    self.assertTrue(obj["metadata"]["labels"])
                kinds = sorted(o["kind"] for o in inst.objects)
                want = ["ConfigMap", "PodDisruptionBudget", "Service",
                        "Service", "Service", "StatefulSet"]
                if inst.values["gateway"]["enabled"]:
                    want += ["Deployment", "PodDisruptionBudget"]
                self.assertEqual(kinds, sorted(want))
                self.check_broker_objects(inst)
                self.check_gateway_objects(inst)

    def check_broker_objects(self, inst):
        v = inst.values
        sts = inst.one("StatefulSet", "-broker")
        spec = sts["spec"]
        pod = spec["template"]
        labels = pod["metadata"]["labels"]
        self.assertEqual(spec["replicas"], v["cluster"]["clusterSize"]
                         // v["cluster"]["regions"])
        self.assertEqual(spec["selector"]["matchLabels"], labels)
        headless = inst.one("Service", "-broker")
        self.assertEqual(spec["serviceName"], headless["metadata"]["name"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertTrue(headless["spec"]["publishNotReadyAddresses"])
        self.assertEqual(headless["spec"]["selector"], labels)
        pdb = inst.one("PodDisruptionBudget", "-broker")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], labels)
        c = pod["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports["management"], 9600)
        self.assertEqual(ports["internal"], 26502)
        for probe, path in (("startupProbe", "/startup"),
                            ("readinessProbe", "/ready"),
                            ("livenessProbe", "/actuator/health/liveness")):
            self.assertEqual(c[probe]["httpGet"],
                             {"path": path, "port": "management"})
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        self.assertEqual(mounts["data"], "/var/lib/tandem")
        self.assertEqual([t["metadata"]["name"]
                          for t in spec["volumeClaimTemplates"]], ["data"])
        self.assertIn("/var/lib/tandem/data", inst.broker_yaml())
        self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
        self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])

    def check_gateway_objects(self, inst):
        svc = inst.one("Service", "-gateway")
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        self.assertEqual(ports, {"grpc": 26500, "rest": 8080})
        if not inst.values["gateway"]["enabled"]:
            broker_pod = inst.one("StatefulSet", "-broker")["spec"][
                "template"]
            self.assertEqual(svc["spec"]["selector"],
                             broker_pod["metadata"]["labels"])
            names = [p["name"] for p in
                     broker_pod["spec"]["containers"][0]["ports"]]
            self.assertIn("grpc", names)
            self.assertIn("enable: true", inst.broker_yaml())
            return
        dep = inst.one("Deployment", "-gateway")
        pod = dep["spec"]["template"]
        self.assertEqual(svc["spec"]["selector"], pod["metadata"]["labels"])
        self.assertEqual(dep["spec"]["selector"]["matchLabels"],
                         pod["metadata"]["labels"])
        env = pod_env(pod["spec"]["containers"][0], "gw")
        contacts = env["ZEEBE_GATEWAY_CLUSTER_INITIALCONTACTPOINTS"]
        want = ["%s.tandem-broker.%s.svc.cluster.local:26501"
                % (n, inst.namespace) for n, _ in inst.broker_pods()]
        self.assertEqual(contacts.split(","), want)

    # -- 3. the configuration the brokers get --------------------------------

    def test_brokers_accept_the_configuration(self):
        self.need_broker()
        with open(CONFIG_DOC) as f:
            doc = f.read()
        for name, inst in self.installs.items():
            cfg = yaml.safe_load(inst.broker_yaml())
            keys = flatten(cfg["tandem"]["broker"])
            for key in keys:
                with self.subTest(install=name, key=key):
                    self.assertIn("`%s`" % key, doc,
                                  "not in docs/configuration.md")
            regions = inst.values["cluster"]["regions"]
            region_id = inst.values["cluster"]["regionId"]
            for ordinal, (pod, env) in enumerate(inst.broker_pods()):
                env = dict(env, HOSTNAME=pod)
                for var in env:
                    if var.startswith("TANDEM_BROKER_") and \
                            not var.startswith("TANDEM_BROKER_EXPORTERS_"):
                        with self.subTest(install=name, env=var):
                            self.assertIn("`%s`" % var[len(
                                "TANDEM_BROKER_"):], doc)
                rc, out = print_config(inst.broker_yaml(), env,
                                       "TANDEM_BROKER_EXPORTERS_")
                with self.subTest(install=name, pod=pod):
                    self.assertEqual(rc, 0, out)
                    self.assertEqual(derived_node_id(out),
                                     ordinal * regions + region_id)
                    self.assertIn('hostname: "%s"' % pod, out)

    def test_exporter_settings_accepted(self):
        self.need_broker()
        for name in ("region0", "region1"):
            inst = self.installs[name]
            pod, env = inst.broker_pods()[0]
            exporters = sorted(k for k in env
                               if k.startswith("TANDEM_BROKER_EXPORTERS_"))
            self.assertEqual(exporters, [
                "TANDEM_BROKER_EXPORTERS_REGION0_ARGS_URL",
                "TANDEM_BROKER_EXPORTERS_REGION0_TYPE",
                "TANDEM_BROKER_EXPORTERS_REGION1_ARGS_URL",
                "TANDEM_BROKER_EXPORTERS_REGION1_TYPE"])
            self.assertIn("elasticsearch-master-hl.%s.svc"
                          % inst.namespace.replace("paris", "london"),
                          env["TANDEM_BROKER_EXPORTERS_REGION0_ARGS_URL"])
            rc, out = print_config(inst.broker_yaml(),
                                   dict(env, HOSTNAME=pod))
            with self.subTest(install=name):
                if rc != 0 and "EXPORTERS_" in out and \
                        "unknown key" in out:
                    self.skipTest("tandem-broker has no exporter keys yet "
                                  "(issue 5): " + out.strip())
                self.assertEqual(rc, 0, out)

    # -- 4. dual region ------------------------------------------------------

    def test_dual_region_ids_and_contact_points(self):
        self.need_broker()
        ids = []
        lists = []
        advertised = []
        for name in ("region0", "region1"):
            inst = self.installs[name]
            for pod, env in inst.broker_pods():
                rc, out = print_config(inst.broker_yaml(),
                                       dict(env, HOSTNAME=pod),
                                       "TANDEM_BROKER_EXPORTERS_")
                self.assertEqual(rc, 0, out)
                ids.append(derived_node_id(out))
                lists.append(printed_contact_points(out))
                advertised.append(
                    env["TANDEM_BROKER_NETWORK_ADVERTISEDHOST"] + ":26502")
        self.assertEqual(sorted(ids), list(range(8)))
        self.assertEqual(ids[:4], [0, 2, 4, 6])
        self.assertEqual(ids[4:], [1, 3, 5, 7])
        for cps in lists:
            self.assertEqual(cps, lists[0])
        self.assertEqual(sorted(lists[0]), sorted(advertised))
        # Node id order: entry n is the broker with node id n.
        by_id = dict(zip(ids, advertised))
        self.assertEqual(lists[0], [by_id[n] for n in range(8)])

    def test_broker_side_template_matches_pods(self):
        """Without generate-values the brokers expand the chart's default
        template; it must name the pods of the StatefulSet."""
        self.need_broker()
        inst = self.installs["default"]
        pods = inst.broker_pods()
        rc, out = print_config(inst.broker_yaml(),
                               dict(pods[0][1], HOSTNAME=pods[0][0]))
        self.assertEqual(rc, 0, out)
        self.assertEqual(printed_contact_points(out),
                         [env["TANDEM_BROKER_NETWORK_ADVERTISEDHOST"]
                          + ":26502" for _, env in pods])

    # -- 5. generate-values --------------------------------------------------

    def test_generate_values(self):
        with open(self.generated) as f:
            gen = yaml.safe_load(f)
        cps = gen["cluster"]["initialContactPoints"]
        self.assertEqual(len(cps), 8)
        self.assertEqual(
            cps[:2], ["tandem-broker-0.tandem-broker.%s.svc.cluster.local:"
                      "26502" % ns for ns in NAMESPACES])
        self.assertEqual(gen["cluster"]["regionNamespaces"],
                         list(NAMESPACES))
        self.assertEqual(
            gen["exporters"]["region1"],
            {"type": "elasticsearch", "args": {
                "url": "http://elasticsearch-master-hl.tandem-paris.svc."
                       "cluster.local:9200"}})
        tool = os.path.join(DUAL, "generate-values")
        for bad, msg in (
                (["--cluster-size", "6", "--namespace0", "a",
                  "--namespace1", "a"], "must differ"),
                (["--cluster-size", "7", "--namespace0", "a",
                  "--namespace1", "b"], "even and at least 4"),
                (["--cluster-size", "2", "--namespace0", "a",
                  "--namespace1", "b"], "even and at least 4"),
                (["--namespace0", "Bad_NS", "--namespace1", "b"],
                 "--namespace0 must be a DNS label")):
            r = subprocess.run([tool] + bad, capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn(msg, r.stderr)
        r = subprocess.run([tool, "--namespace0", "a", "--namespace1", "b",
                            "--exporter-type", "postgresql",
                            "--cluster-size", "4"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        gen = yaml.safe_load(r.stdout)
        self.assertEqual(len(gen["cluster"]["initialContactPoints"]), 4)
        self.assertEqual(gen["exporters"]["region0"]["args"]["url"],
                         "postgresql://tandem@postgresql.a.svc.cluster.local"
                         ":5432/tandem")

    # -- 6. the renderer -----------------------------------------------------

    def test_renderer_is_strict_and_go_like(self):
        tmp = os.path.join(self.tmp, "chart")
        os.makedirs(os.path.join(tmp, "templates"))
        with open(os.path.join(tmp, "Chart.yaml"), "w") as f:
            f.write("name: t\nversion: 1.0.0\n")
        with open(os.path.join(tmp, "values.yaml"), "w") as f:
            f.write("a: {b: 2}\nlist: [x, y]\nm: {k2: v2, k1: v1}\n")
        cases = [
            ("{{ .Values.a.b }}", "2"),
            ("x  {{- .Values.a.b -}}  \n y", "x2y"),
            ("{{ range .Values.list }}[{{ . }}]{{ end }}", "[x][y]"),
            ("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}",
             "k1=v1;k2=v2;"),
            ("{{ range $i := until 3 }}{{ if $i }},{{ end }}{{ $i }}"
             "{{ end }}", "0,1,2"),
            ("{{ if eq .Values.a.b 3 }}a{{ else if .Values.a.b }}b"
             "{{ else }}c{{ end }}", "b"),
            ("{{ .Values.none | default \"d\" | quote }}", '"d"'),
            ("{{ div 8 (int \"2\") }}", "4"),
            ("{{ toYaml .Values.m | nindent 2 }}", "\n  k1: v1\n  k2: v2"),
            ("{{ with .Values.a }}{{ .b }}{{ end }}", "2"),
            ("{{/* note */}}{{ $x := 5 }}{{ $x }}", "5"),
        ]
        for src, want in cases:
            with open(os.path.join(tmp, "templates", "t.yaml"), "w") as f:
                f.write(src)
            with self.subTest(template=src):
                [(_, out)] = gotemplate.render_chart(tmp, "r", "ns")
                self.assertEqual(out, want)
        for src, msg in (("{{ .Values.a.c }}", "<no value>"),
                         ("{{ .Values.nope.x }}", "nil pointer"),
                         ("{{ .Values.m }}", "needs toYaml"),
                         ("{{ if .Values.a }}x", "missing {{ end }}"),
                         ("{{ lookup \"v1\" }}", "not supported"),
                         ("{{ template \"x\" . }}", "not supported")):
            with open(os.path.join(tmp, "templates", "t.yaml"), "w") as f:
                f.write(src)
            with self.subTest(template=src):
                with self.assertRaises(gotemplate.TemplateError) as cm:
                    gotemplate.render_chart(tmp, "r", "ns")
                self.assertIn(msg, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
