"""Host tests of harness/series.py on a small stand-in for the kernel tree."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERIES = os.path.join(os.path.dirname(HERE), "series.py")


def sh(cwd, *args, check=True):
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if check and res.returncode:
        raise AssertionError("%s failed: %s%s" % (args, res.stdout, res.stderr))
    return res


class SeriesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        t = self.tmp.name
        self.root = os.path.join(t, "project")
        self.stripped = os.path.join(t, "stripped")
        self.tree = os.path.join(t, "tree")
        os.makedirs(os.path.join(self.stripped, "mm"))
        os.makedirs(os.path.join(self.root, "patches"))
        with open(os.path.join(self.stripped, "Makefile"), "w") as f:
            f.write("obj-y += a.o\n")
        with open(os.path.join(self.stripped, "mm", "a.c"), "w") as f:
            f.write("".join("int line%d;\n" % i for i in range(20)))
        with open(os.path.join(self.stripped, ".stripped"), "w") as f:
            f.write("stamp1\n")

    def tearDown(self):
        self.tmp.cleanup()

    def run_series(self, *args, check=True):
        return sh(self.root, sys.executable, SERIES, "--root", self.root, "--tree", self.tree,
                  "--stripped", self.stripped, *args, check=check)

    def commit_in_tree(self, msg, edits, new_files=()):
        for rel, text in list(edits.items()) + list(new_files):
            path = os.path.join(self.tree, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        sh(self.tree, "git", "add", "-A", ".")
        sh(self.tree, "git", "commit", "-q", "-m", msg)

    def make_two_patches(self):
        self.run_series("assemble")
        a = open(os.path.join(self.tree, "mm", "a.c")).read()
        self.commit_in_tree("mm: first change\n\nWhy it is needed.",
                            {"mm/a.c": a.replace("int line5;", "int line5_changed;"),
                             "Makefile": "obj-y += a.o new.o\n"},
                            [("mm/new.c", "int new_file;\n")])
        self.commit_in_tree("lib: only a new file", {}, [("lib/only.c", "int only;\n")])
        self.run_series("export")

    def test_export_then_assemble_gives_the_same_tree(self):
        self.make_two_patches()
        series = open(os.path.join(self.root, "patches", "series")).read()
        self.assertIn("0001-mm-first-change.patch\n\tmm/new.c\n", series)
        self.assertIn("0002-lib-only-a-new-file.patch\n\tlib/only.c\n", series)
        self.assertEqual(open(os.path.join(self.root, "mm", "new.c")).read(), "int new_file;\n")
        patch1 = open(os.path.join(self.root, "patches", "0001-mm-first-change.patch")).read()
        self.assertIn("line5_changed", patch1)
        self.assertNotIn("new_file", patch1, "owned files never go into a patch")
        tree_before = sh(self.tree, "git", "rev-parse", "HEAD^{tree}").stdout
        # a fresh build tree from the exported project is the same tree
        sh(self.root, "rm", "-rf", self.tree)
        self.run_series("assemble")
        self.assertEqual(sh(self.tree, "git", "rev-parse", "HEAD^{tree}").stdout, tree_before)
        self.assertEqual(sh(self.tree, "git", "rev-list", "--count", "base..HEAD").stdout, "2\n")
        # and exporting it again changes nothing in the project
        snapshot = {n: open(os.path.join(self.root, "patches", n)).read()
                    for n in os.listdir(os.path.join(self.root, "patches"))}
        self.run_series("export")
        again = {n: open(os.path.join(self.root, "patches", n)).read()
                 for n in os.listdir(os.path.join(self.root, "patches"))}
        self.assertEqual(snapshot, again)

    def test_assemble_twice_is_a_no_op(self):
        self.make_two_patches()
        self.run_series("assemble")
        head = sh(self.tree, "git", "rev-parse", "HEAD").stdout
        out = self.run_series("assemble").stdout
        self.assertIn("unchanged", out)
        self.assertEqual(sh(self.tree, "git", "rev-parse", "HEAD").stdout, head)

    def test_patch_that_does_not_apply_names_patch_file_and_hunk(self):
        self.make_two_patches()
        with open(os.path.join(self.stripped, "mm", "a.c"), "w") as f:
            f.write("".join("int other%d;\n" % i for i in range(20)))
        with open(os.path.join(self.stripped, ".stripped"), "w") as f:
            f.write("stamp2\n")
        res = self.run_series("assemble", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("patch 0001-mm-first-change.patch does not apply", res.stderr)
        self.assertIn("file: mm/a.c", res.stderr)
        self.assertIn("hunk: @@ -", res.stderr)

    def test_refuses_to_drop_work_not_exported(self):
        self.make_two_patches()
        self.run_series("assemble")
        with open(os.path.join(self.tree, "Makefile"), "a") as f:
            f.write("# local edit\n")
        res = self.run_series("assemble", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("uncommitted changes", res.stderr)
        sh(self.tree, "git", "commit", "-qam", "wip")
        res = self.run_series("assemble", check=False)
        self.assertIn("commits since the last assemble", res.stderr)
        self.run_series("assemble", "--force")
        self.assertNotIn("# local edit", open(os.path.join(self.tree, "Makefile")).read())

    def test_owned_file_changed_by_a_later_commit_is_refused(self):
        self.make_two_patches()
        self.run_series("assemble")
        self.commit_in_tree("mm: touch new.c", {"mm/new.c": "int new_file2;\n"})
        res = self.run_series("export", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("changes mm/new.c", res.stderr)

    def test_missing_owned_file_is_an_error(self):
        self.make_two_patches()
        os.remove(os.path.join(self.root, "lib", "only.c"))
        res = self.run_series("assemble", "--force", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("lists lib/only.c", res.stderr)


if __name__ == "__main__":
    unittest.main()
