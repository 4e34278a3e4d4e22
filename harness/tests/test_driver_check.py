"""Host tests of harness/driver-check.sh on a small stand-in for the kernel tree.

The stand-in's Makefile knows tinyconfig, olddefconfig and `%.o: %.c`: a
source holding BROKEN fails with a compiler-like error, one holding NOOUT
"succeeds" without writing its object, any other compiles (is touched).
"""

import os
import re
import subprocess
import tempfile
import unittest

HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(HARNESS, "driver-check.sh")

MAKEFILE = """\
O ?= .
tinyconfig:
\t@mkdir -p $(O) && : >$(O)/.config
olddefconfig:
\t@tac $(O)/.config | awk 'match($$0, /CONFIG_[A-Z0-9_]+/) { s = substr($$0, RSTART, \
RLENGTH); if (seen[s]++) next } { print }' | tac >$(O)/.config.new && mv $(O)/.config.new $(O)/.config
\t@if [ -f drop ]; then sed -i "/^CONFIG_$$(cat drop)=/d" $(O)/.config; fi
\t@if [ -f force ]; then sed -i "/ CONFIG_$$(cat force) is not set/d" $(O)/.config; \
echo "CONFIG_$$(cat force)=y" >>$(O)/.config; fi
%.o: %.c
\t@if grep -q BROKEN $<; then echo "$<:2:5: error: 'MEMORY_DEVICE_COHERENT' undeclared" >&2; \
exit 1; fi
\t@if grep -q WARN $<; then echo "$<:3:7: warning: unused variable 'x'" >&2; fi
\t@if ! grep -q NOOUT $<; then mkdir -p $(dir $(O)/$@) && touch $(O)/$@; fi
"""
MERGE_CONFIG = """\
#!/bin/sh
# merge_config.sh -m -O OUT BASE FRAG...: append the fragments
shift 3
base=$1
shift
cat "$@" >>"$base"
"""


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class DriverCheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.build = self.tmp.name
        self.tree = os.path.join(self.build, "tree")
        self.out = os.path.join(self.build, "out", "drivers")
        write(os.path.join(self.tree, "Makefile"), MAKEFILE)
        write(os.path.join(self.tree, "scripts", "kconfig", "merge_config.sh"), MERGE_CONFIG,
              0o755)
        syms = set()
        for frag in ("base.config", "drivers.config", "nothp.config", "nodevice.config"):
            with open(os.path.join(HARNESS, "config", frag)) as f:
                syms |= set(re.findall(r"^(?:# )?CONFIG_([A-Z0-9_]+)[= ]", f.read(), re.M))
        self.assertIn("DRM_XE_DISPLAY", syms)
        self.kconfig(syms)
        self.sources({"drivers/gpu/a/a_svm.c": "int a;\n",
                      "drivers/gpu/b/b_dmem.c": "int b;\n",
                      "drivers/gpu/c/c.c": "",
                      "drivers/gpu/kfd/kfd_svm.c": "BROKEN\n"})
        self.expect = os.path.join(self.build, "driver-objects")

    def tearDown(self):
        self.tmp.cleanup()

    def kconfig(self, syms):
        write(os.path.join(self.tree, "Kconfig"), "".join("config %s\n" % s for s in sorted(syms)))

    def sources(self, files):
        for rel, text in files.items():
            write(os.path.join(self.tree, rel), text)

    def check(self, expectations, *args):
        write(self.expect, "# object  ok | fails REASON\n" + expectations)
        env = dict(os.environ, BUILD=self.build, DRIVER_OBJECTS=self.expect,
                   HMMCI_BUILD_LOCK=os.path.join(self.build, "lock"))
        return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True,
                              env=env)

    EXPECT = ("drivers/gpu/a/a_svm.o ok\n"
              "drivers/gpu/b/b_dmem.o\tok\n"
              "drivers/gpu/c/../kfd/kfd_svm.o  fails MEMORY_DEVICE_COHERENT not provided yet\n")

    def test_as_expected_passes_and_shows_the_expected_failure(self):
        res = self.check(self.EXPECT)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"(?m)^ok      drivers/gpu/a/a_svm\.o \(\d+ s\)$")
        self.assertRegex(res.stdout, r"(?m)^xfail   drivers/gpu/c/\.\./kfd/kfd_svm\.o \(\d+ s\): "
                         r"fails as expected: MEMORY_DEVICE_COHERENT not provided yet; "
                         r"1 compiler error\(s\), the first:")
        self.assertIn("error: 'MEMORY_DEVICE_COHERENT' undeclared", res.stdout)
        self.assertIn("driver objects: 2/3 build; expected failures: kfd_svm.o "
                      "(MEMORY_DEVICE_COHERENT not provided yet)\n", res.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.out, "drivers/gpu/b/b_dmem.o")))

    def test_an_ok_object_that_fails_fails_with_its_error(self):
        self.sources({"drivers/gpu/b/b_dmem.c": "BROKEN\n"})
        res = self.check(self.EXPECT)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stdout, r"(?m)^FAIL    drivers/gpu/b/b_dmem\.o \(\d+ s\): does not "
                         r"compile \(log: .*/logs/drivers-b_dmem\.log\)$")
        self.assertIn("b_dmem.c:2:5: error:", res.stdout)
        self.assertIn("driver objects: 1/3 build; expected failures: kfd_svm.o (MEMORY_DEVICE_"
                      "COHERENT not provided yet); unexpected: b_dmem.o (does not compile)",
                      res.stdout)

    def test_an_expected_failure_that_compiles_fails(self):
        self.sources({"drivers/gpu/kfd/kfd_svm.c": "int fixed;\n"})
        res = self.check(self.EXPECT)
        self.assertEqual(res.returncode, 1)
        self.assertIn("compiles now, but driver-objects expects it to fail "
                      "(MEMORY_DEVICE_COHERENT not provided yet): update that file", res.stdout)
        self.assertIn("driver objects: 3/3 build; unexpected: kfd_svm.o (compiles now)",
                      res.stdout)

    def test_a_stale_object_does_not_pass_for_a_compiled_one(self):
        self.sources({"drivers/gpu/a/a_svm.c": "BROKEN\n"})
        write(os.path.join(self.out, "drivers/gpu/a/a_svm.o"), "stale")
        res = self.check("drivers/gpu/a/a_svm.o ok\n")
        self.assertEqual(res.returncode, 1)
        self.assertIn("driver objects: 0/1 build", res.stdout)

    def test_an_object_that_compiles_with_a_warning_fails(self):
        self.sources({"drivers/gpu/a/a_svm.c": "WARN\n"})
        res = self.check(self.EXPECT)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stdout, r"(?m)^FAIL    drivers/gpu/a/a_svm\.o \(\d+ s\): compiles "
                         r"with 1 warning\(s\) \(log: .*/logs/drivers-a_svm\.log\)$")
        self.assertIn("a_svm.c:3:7: warning: unused variable 'x'", res.stdout)
        self.assertIn("driver objects: 2/3 build; expected failures: kfd_svm.o (MEMORY_DEVICE_"
                      "COHERENT not provided yet); unexpected: a_svm.o (compiler warnings)",
                      res.stdout)

    def test_make_that_writes_no_object_fails(self):
        self.sources({"drivers/gpu/a/a_svm.c": "NOOUT\n"})
        res = self.check("drivers/gpu/a/a_svm.o ok\n")
        self.assertEqual(res.returncode, 1)
        self.assertIn("make succeeded but wrote no", res.stdout)

    def test_an_unknown_object_fails(self):
        res = self.check("drivers/gpu/nowhere/x.o ok\n")
        self.assertEqual(res.returncode, 1)
        self.assertIn("No rule to make target", res.stdout)

    def test_a_config_symbol_not_as_asked_stops_it(self):
        write(os.path.join(self.tree, "drop"), "DRM_NOUVEAU_SVM")
        res = self.check(self.EXPECT)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("not as asked: CONFIG_DRM_NOUVEAU_SVM=y (got: unset)", res.stderr)
        self.assertNotIn("driver objects:", res.stdout)

    def test_a_symbol_set_against_is_not_set_stops_it(self):
        write(os.path.join(self.tree, "force"), "DRM_XE_DISPLAY")
        res = self.check(self.EXPECT)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("not as asked: # CONFIG_DRM_XE_DISPLAY is not set "
                      "(got: CONFIG_DRM_XE_DISPLAY=y)", res.stderr)

    def test_a_driver_symbol_the_tree_lacks_stops_it(self):
        self.kconfig(["PCI", "DRM"])
        res = self.check(self.EXPECT)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("drivers.config asks for symbols this tree does not define: ", res.stderr)
        self.assertIn(" HSA_AMD_SVM ", res.stderr)

    def test_another_configuration_builds_apart_and_overrides_base(self):
        # nothp.config unsets what base.config sets: the last one counts
        res = self.check("drivers/gpu/a/a_svm.o ok\n", "nothp")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("nothp objects: 1/1 build\n", res.stdout)
        out = os.path.join(self.build, "out", "nothp")
        self.assertTrue(os.path.exists(os.path.join(out, "drivers/gpu/a/a_svm.o")))
        with open(os.path.join(out, ".config")) as f:
            config = f.read()
        self.assertIn("# CONFIG_TRANSPARENT_HUGEPAGE is not set", config)
        self.assertNotIn("CONFIG_TRANSPARENT_HUGEPAGE=y", config)
        self.assertFalse(os.path.exists(self.out))

    def test_an_overridden_symbol_not_as_asked_stops_it(self):
        write(os.path.join(self.tree, "force"), "TRANSPARENT_HUGEPAGE")
        res = self.check("drivers/gpu/a/a_svm.o ok\n", "nothp")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("not as asked: # CONFIG_TRANSPARENT_HUGEPAGE is not set "
                      "(got: CONFIG_TRANSPARENT_HUGEPAGE=y)", res.stderr)

    def test_an_unknown_configuration_is_refused(self):
        res = self.check("drivers/gpu/a/a_svm.o ok\n", "nosuch")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("unknown configuration 'nosuch'", res.stderr)

    def test_a_bad_expectation_line_is_refused(self):
        res = self.check("drivers/gpu/a/a_svm.o fails\n")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("bad line 'drivers/gpu/a/a_svm.o fails '", res.stderr)


if __name__ == "__main__":
    unittest.main()
