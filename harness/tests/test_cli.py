"""The stage scripts refuse bad input with one clear message and exit != 0."""

import os
import subprocess
import tempfile
import unittest

HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, build=None):
    env = dict(os.environ)
    if build:
        env["BUILD"] = build
    return subprocess.run(["bash"] + [os.path.join(HARNESS, args[0])] + list(args[1:]),
                          capture_output=True, text=True, env=env)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.build = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def assertRefused(self, res, text):
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(text, res.stderr)
        self.assertLessEqual(len(res.stderr.strip().splitlines()), 3, res.stderr)

    def test_build_unknown_variant(self):
        self.assertRefused(run("build.sh", "fast", build=self.build), "unknown variant 'fast'")

    def test_run_unknown_variant(self):
        self.assertRefused(run("run.sh", "fast", "always", build=self.build),
                           "unknown variant 'fast'")

    def test_run_unknown_thp_mode(self):
        self.assertRefused(run("run.sh", "default", "sometimes", build=self.build),
                           "unknown THP mode 'sometimes'")

    def test_run_variant_not_built(self):
        self.assertRefused(run("run.sh", "debug", "always", build=self.build),
                           "variant debug is not built")

    def test_build_without_a_source_tree(self):
        self.assertRefused(run("build.sh", "stripped", build=self.build), "no source tree")

    def test_pipeline_unknown_mode(self):
        self.assertRefused(run("pipeline.sh", "everything", build=self.build), "usage")

    def test_guest_run_variant_not_built(self):
        self.assertRefused(run("guest-run.sh", "default", "", "true", build=self.build),
                           "variant default is not built")

    def test_assemble_without_stripped_base(self):
        res = run("assemble.sh", build=self.build)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("no stripped base", res.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.build, "tree")),
                         "a refused assemble leaves no half-made tree")


if __name__ == "__main__":
    unittest.main()
