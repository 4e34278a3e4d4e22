"""Host tests of harness/exportcheck.py on two small stand-ins for kernel trees."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import exportcheck  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(HERE), "exportcheck.py")

BASE = {
    "Makefile": "obj-y += mm/\n",
    "mm/hmm.c": ("int hmm_range_fault(void *r)\n{\n\treturn 0;\n}\n"
                 "EXPORT_SYMBOL(hmm_range_fault);\n"),
    "mm/migrate.c": ("void migrate_vma_setup(void) {}\nEXPORT_SYMBOL(migrate_vma_setup);\n"
                     "void zone_device_page_init(void) {}\n"
                     "EXPORT_SYMBOL_GPL( zone_device_page_init );\n"),
    "drivers/cxl/core.c": "int cxl_x;\nEXPORT_SYMBOL_NS_GPL(cxl_x, CXL);\n",
    "arch/x86/lib/memcpy.S": ("SYM_FUNC_START(memcpy)\nSYM_FUNC_END(memcpy)\n"
                              "EXPORT_SYMBOL(memcpy)\n"),
    "include/linux/export.h": ("#define EXPORT_SYMBOL(sym)\t\t_EXPORT_SYMBOL(sym, \"\")\n"
                               "#define EXPORT_SYMBOL_GPL(sym)\t\t_EXPORT_SYMBOL(sym, \"GPL\")\n"),
}


def write_tree(top, files):
    for rel, text in files.items():
        path = os.path.join(top, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


class ExportCheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.base = os.path.join(self.tmp.name, "base")
        self.tree = os.path.join(self.tmp.name, "tree")
        write_tree(self.base, BASE)
        write_tree(self.tree, BASE)

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, changes=None, remove=()):
        write_tree(self.tree, changes or {})
        for rel in remove:
            os.unlink(os.path.join(self.tree, rel))
        return subprocess.run([sys.executable, SCRIPT, "--base", self.base, "--tree", self.tree],
                              capture_output=True, text=True)

    def test_same_exports_pass(self):
        res = self.check()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("5 symbols in the base, 5 in the tree: 0 missing, 0 changed, 0 new",
                      res.stdout)
        self.assertIn("every export of the base is kept", res.stdout)

    def test_gpl_only_in_the_series_fails_and_names_the_symbol(self):
        res = self.check({"mm/hmm.c": BASE["mm/hmm.c"].replace("EXPORT_SYMBOL(",
                                                               "EXPORT_SYMBOL_GPL(")})
        self.assertEqual(res.returncode, 1)
        self.assertIn("CHANGED hmm_range_fault: GPL mismatch: GPL-only in the series "
                      "(mm/hmm.c:5 EXPORT_SYMBOL_GPL), not GPL-only in the base "
                      "(mm/hmm.c:5 EXPORT_SYMBOL)", res.stdout)
        self.assertIn("FAIL: exports: 1 symbol(s) of the base missing or changed in the "
                      "series: hmm_range_fault", res.stdout)

    def test_gpl_dropped_in_the_series_fails_too(self):
        res = self.check({"mm/migrate.c": BASE["mm/migrate.c"].replace("_GPL", "")})
        self.assertEqual(res.returncode, 1)
        self.assertIn("CHANGED zone_device_page_init: GPL mismatch", res.stdout)

    def test_missing_export_fails(self):
        res = self.check(remove=["mm/hmm.c"])
        self.assertEqual(res.returncode, 1)
        self.assertIn("MISSING hmm_range_fault: exported by the base "
                      "(mm/hmm.c:5 EXPORT_SYMBOL), not by the series", res.stdout)
        self.assertIn("series: hmm_range_fault\n", res.stdout)

    def test_namespace_change_fails(self):
        res = self.check({"drivers/cxl/core.c": "int cxl_x;\nEXPORT_SYMBOL_GPL(cxl_x);\n"})
        self.assertEqual(res.returncode, 1)
        self.assertIn("CHANGED cxl_x: namespace mismatch: GPL-only in the series", res.stdout)
        self.assertIn("GPL-only in namespace CXL in the base", res.stdout)

    def test_new_exports_are_listed_but_allowed(self):
        res = self.check({"mm/new.c": "void hmm_new(void) {}\nEXPORT_SYMBOL_GPL(hmm_new);\n"})
        self.assertEqual(res.returncode, 0, res.stdout)
        self.assertIn("NEW     hmm_new: new in the series: mm/new.c:2 EXPORT_SYMBOL_GPL",
                      res.stdout)
        self.assertIn("(1 new in the series: hmm_new)", res.stdout)

    def test_an_export_may_move_to_another_file(self):
        res = self.check({"mm/hmm_walk.c": BASE["mm/hmm.c"]}, remove=["mm/hmm.c"])
        self.assertEqual(res.returncode, 0, res.stdout)

    def test_defines_comments_macro_bodies_and_other_files_are_not_exports(self):
        res = self.check({
            "mm/notes.c": ("/*\n * EXPORT_SYMBOL(in_a_comment);\n */\n"
                           "// EXPORT_SYMBOL_GPL(line_comment);\n"
                           "#define EXPORT_FOO(x) EXPORT_SYMBOL(x)\n"
                           "#define DEFINE_GETTER(name)\t\\\n\tint get_##name(void);\t\\\n"
                           "\tEXPORT_SYMBOL(name)\t\\\n"),
            "Documentation/mm/hmm.rst": "EXPORT_SYMBOL_GPL(only_in_docs);\n",
            ".git/objects/ab.c": "EXPORT_SYMBOL(in_git);\n",
        })
        self.assertEqual(res.returncode, 0, res.stdout)
        self.assertIn("0 new", res.stdout)

    def test_no_tree_is_a_clear_error(self):
        res = subprocess.run([sys.executable, SCRIPT, "--base", self.base, "--tree",
                              os.path.join(self.tmp.name, "nothing")],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 2)
        self.assertIn("error: no assembled tree at", res.stderr)


class ParseLineTest(unittest.TestCase):
    def test_kinds(self):
        self.assertEqual(exportcheck.parse_line("EXPORT_SYMBOL_NS_GPL(f, CXL);"),
                         [("f", "EXPORT_SYMBOL_NS_GPL", ("GPL", "CXL"))])
        self.assertEqual(exportcheck.parse_line('EXPORT_SYMBOL_NS(f, "USB");'),
                         [("f", "EXPORT_SYMBOL_NS", ("", "USB"))])
        self.assertEqual(exportcheck.parse_line('EXPORT_SYMBOL_GPL_FOR_MODULES(f, "kvm");'),
                         [("f", "EXPORT_SYMBOL_GPL_FOR_MODULES", ("GPL", "module:kvm"))])
        self.assertEqual(exportcheck.parse_line("EXPORT_PER_CPU_SYMBOL_GPL(cpu_x);"),
                         [("cpu_x", "EXPORT_PER_CPU_SYMBOL_GPL", ("GPL", ""))])

    def test_not_exports(self):
        for text in ("EXPORT_SYMBOL(name##_x);", "MY_EXPORT_SYMBOL(f);", "#define EXPORT_SYMBOL(s)",
                     "EXPORT_TRACEPOINT_SYMBOL(t);", "\tEXPORT_SYMBOL(x); \\"):
            self.assertEqual(exportcheck.parse_line(text), [], text)


if __name__ == "__main__":
    unittest.main()
