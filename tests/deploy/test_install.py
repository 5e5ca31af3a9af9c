"""test_install.py: `meson install --destdir` of this build.

Data flow: meson install -C TANDEM_BUILD_DIR --destdir <temp> --no-rebuild
-> the tree under <temp> is searched for what an operator needs: the two
binaries (runnable: tandem-broker --print-config on the installed default
configuration, tandem-gateway --help), <sysconfdir>/tandem/broker.yaml and
gateway.env, the man pages (groff -man -ww finds no problems), the systemd
units (every @placeholder@ filled in, ExecStart naming the installed
binary, `systemd-analyze verify` clean and `systemd-analyze security`
exposure at most 2.0 when systemd-analyze is available) and the
documentation. The temporary tree is removed afterwards.

Environment: TANDEM_BUILD_DIR (default <repo>/build). Python 3 stdlib.
"""

import glob
import json
import os
import shutil
import subprocess
import tempfile
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TANDEM_BUILD_DIR", os.path.join(REPO, "build"))


def build_options():
    """The install directories of the build, from meson introspect."""
    r = subprocess.run(["meson", "introspect", "--buildoptions", BUILD],
                       capture_output=True, text=True, timeout=60,
                       check=True)
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    prefix = opts["prefix"]
    return {k: os.path.join(prefix, opts[k]) for k in
            ("bindir", "sysconfdir", "mandir", "datadir")} | \
        {"prefix": prefix}


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("meson") is None:
            raise unittest.SkipTest("meson is not on PATH")
        cls.dest = tempfile.mkdtemp(prefix="tandem-install-")
        r = subprocess.run(["meson", "install", "-C", BUILD, "--destdir",
                            cls.dest, "--no-rebuild", "--quiet"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            shutil.rmtree(cls.dest, ignore_errors=True)
            raise AssertionError("meson install failed:\n" + r.stdout +
                                 r.stderr)
        cls.dirs = build_options()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def path(self, kind, *parts):
        return os.path.join(self.dest, self.dirs[kind].lstrip("/"), *parts)

    def test_binaries_run(self):
        broker = self.path("bindir", "tandem-broker")
        gateway = self.path("bindir", "tandem-gateway")
        for exe in (broker, gateway):
            self.assertTrue(os.access(exe, os.X_OK), exe)
        config = self.path("sysconfdir", "tandem", "broker.yaml")
        r = subprocess.run([broker, "--config", config, "--print-config"],
                           capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("clusterSize: 1", r.stdout)
        r = subprocess.run([gateway, "--help"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--contact-point", r.stdout)

    def test_configuration_files(self):
        env_file = self.path("sysconfdir", "tandem", "gateway.env")
        with open(env_file) as f:
            names = [ln.split("=", 1)[0] for ln in f
                     if ln.strip() and not ln.startswith("#")]
        self.assertIn("ZEEBE_GATEWAY_CLUSTER_INITIALCONTACTPOINTS", names)

    def test_man_pages(self):
        for name in ("tandem-broker", "tandem-gateway"):
            page = self.path("mandir", "man1", name + ".1")
            self.assertTrue(os.path.exists(page), page)
            if shutil.which("groff"):
                r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z",
                                    page], capture_output=True, text=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "")

    def test_systemd_units(self):
        units = sorted(glob.glob(os.path.join(
            self.dest, self.dirs["prefix"].lstrip("/"), "lib", "systemd",
            "system", "*.service")))
        self.assertEqual([os.path.basename(u) for u in units],
                         ["tandem-broker.service", "tandem-gateway.service"])
        for unit in units:
            with open(unit) as f:
                text = f.read()
            self.assertNotIn("@bindir@", text)
            self.assertNotIn("@sysconfdir@", text)
            name = os.path.basename(unit)[:-len(".service")]
            self.assertIn("ExecStart=%s " % os.path.join(
                self.dirs["bindir"], name) if name == "tandem-broker"
                else "ExecStart=%s\n" % os.path.join(self.dirs["bindir"],
                                                     name), text)
            for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                              "DynamicUser=yes", "CapabilityBoundingSet=\n"):
                self.assertIn(hardening, text)
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        # verify wants the binaries at their final path: point the units'
        # bindir into the destdir (man pages are not searched there).
        bindir = self.dirs["bindir"]
        checked = os.path.join(self.dest, "units-under-test")
        os.makedirs(checked)
        for unit in units:
            with open(unit) as f:
                text = f.read().replace(bindir + "/",
                                        self.path("bindir") + "/")
            with open(os.path.join(checked, os.path.basename(unit)),
                      "w") as f:
                f.write(text)
        names = sorted(os.listdir(checked))
        r = subprocess.run([analyze, "verify", "--man=no"] + names,
                           cwd=checked, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Exposure score (0 safest .. 10): the hardening must keep both
        # units at 2.0 or below ("OK").
        for name in names:
            r = subprocess.run([analyze, "security", "--offline=true",
                                "--threshold=20", "--no-pager", name],
                               cwd=checked, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr)

    def test_documentation(self):
        for doc in ("configuration.md", "operations.md", "deployment.md",
                    "README.md"):
            self.assertTrue(os.path.exists(self.path(
                "datadir", "doc", "tandem", doc)), doc)


if __name__ == "__main__":
    unittest.main()
