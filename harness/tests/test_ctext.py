"""Unit tests of the strip step's C surgery (harness/strip/ctext.py)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "strip"))
import ctext  # noqa: E402
from ctext import FALSE  # noqa: E402


def strip_pred(text, name="is_gone"):
    """Replace calls of `name` by false and fold, as strip.py does."""
    text = ctext.replace_calls(text, name, FALSE)
    touched = ctext.functions_with_sentinels(text)
    text = ctext.fold_all(text)
    return ctext.drop_unused_locals(text, touched)


class FoldTest(unittest.TestCase):
    def test_dead_branch_of_an_else_if_chain(self):
        src = ("int f(int e)\n{\n\tif (is_gone(e)) {\n\t\ta();\n\t} else if (b(e)) {\n"
               "\t\tc();\n\t} else {\n\t\td();\n\t}\n\treturn 0;\n}\n")
        self.assertEqual(strip_pred(src),
                         "int f(int e)\n{\n\tif (b(e)) {\n\t\tc();\n\t} else {\n"
                         "\t\td();\n\t}\n\treturn 0;\n}\n")

    def test_middle_of_a_chain_goes(self):
        src = ("void f(int e)\n{\n\tif (a(e))\n\t\tx();\n\telse if (is_gone(e))\n\t\ty();\n"
               "\telse\n\t\tz();\n}\n")
        self.assertEqual(strip_pred(src),
                         "void f(int e)\n{\n\tif (a(e))\n\t\tx();\n\telse\n\t\tz();\n}\n")

    def test_negated_conjunction_becomes_unconditional(self):
        src = "bool f(int e)\n{\n\tif (!is_gone(e) &&\n\t    !is_gone(e))\n\t\treturn false;\n\treturn true;\n}\n"
        self.assertEqual(strip_pred(src), "bool f(int e)\n{\n\treturn false;\n\treturn true;\n}\n")

    def test_disjunction_keeps_the_live_operand(self):
        src = "bool f(int e)\n{\n\treturn a(e) || is_gone(e) ||\n\t       b(e);\n}\n"
        self.assertEqual(strip_pred(src), "bool f(int e)\n{\n\treturn a(e) ||\n\t       b(e);\n}\n")

    def test_likely_and_argument(self):
        src = "void f(int e)\n{\n\tx = likely(!is_gone(e)) && y(e);\n\tg(e, !is_gone(e));\n}\n"
        self.assertEqual(strip_pred(src), "void f(int e)\n{\n\tx = y(e);\n\tg(e, true);\n}\n")

    def test_const_bool_is_propagated(self):
        src = ("int f(int e)\n{\n\tconst bool p = is_gone(e);\n\tint r = 0;\n\n"
               "\tif (!p)\n\t\tr = 1;\n\treturn r;\n}\n")
        self.assertEqual(strip_pred(src),
                         "int f(int e)\n{\n\tint r = 0;\n\n\tr = 1;\n\treturn r;\n}\n")

    def test_comments_and_strings_are_not_touched(self):
        src = "void f(int e)\n{\n\t/* is_gone(e) */\n\tputs(\"is_gone(e)\");\n}\n"
        self.assertEqual(strip_pred(src), src)


class UnusedLocalsTest(unittest.TestCase):
    def test_control_statements_are_not_declarations(self):
        src = ("int f(int e)\n{\n\tstruct page *page;\n\tint n;\n\n\tfor (;;) {\n"
               "\t\tif (is_gone(e))\n\t\t\tpage = g();\n\t\tif (e)\n\t\t\tbreak;\n"
               "\t\tif (n)\n\t\t\tcontinue;\n\t\tif (!e)\n\t\t\treturn;\n\t}\n\treturn n;\n}\n")
        out = strip_pred(src)
        self.assertNotIn("struct page *page;", out)
        for kept in ("\t\t\tbreak;\n", "\t\t\tcontinue;\n", "\t\t\treturn;\n", "\tint n;\n"):
            self.assertIn(kept, out)

    def test_only_functions_that_were_folded(self):
        src = ("void f(int e)\n{\n\tint unused;\n}\n\nvoid g(int e)\n{\n\tint x;\n\n"
               "\tif (is_gone(e))\n\t\tx = 1;\n}\n")
        out = strip_pred(src)
        self.assertIn("\tint unused;\n", out)
        self.assertNotIn("\tint x;\n", out)


class DefinitionsTest(unittest.TestCase):
    def test_function_with_kernel_doc_and_export(self):
        src = ("int keep(void);\n\n/**\n * gone() - doc\n */\nint gone(int a)\n{\n\treturn a;\n}\n"
               "EXPORT_SYMBOL_GPL(gone);\n\nint keep(void)\n{\n\treturn gone(1);\n}\n")
        out = ctext.drop_function(src, "gone")
        self.assertEqual(out, "int keep(void);\n\nint keep(void)\n{\n\treturn gone(1);\n}\n")

    def test_enum_member_hands_on_its_value_and_keeps_comments(self):
        src = "enum t {\n\t/* 0 is reserved */\n\tA = 1,\n\tB,\n\tC,\n};\n"
        self.assertEqual(ctext.drop_enum_member(src, "A"),
                         "enum t {\n\t/* 0 is reserved */\n\tB = 1,\n\tC,\n};\n")

    def test_case_labels_with_their_body(self):
        src = ("int f(int t)\n{\n\tswitch (t) {\n\tcase GONE:\n\t\treturn 1;\n\tcase KEPT:\n"
               "\t\treturn 2;\n\tdefault:\n\t\tbreak;\n\t}\n\treturn 0;\n}\n")
        self.assertEqual(ctext.drop_case_labels(src, "GONE"),
                         "int f(int t)\n{\n\tswitch (t) {\n\tcase KEPT:\n\t\treturn 2;\n"
                         "\tdefault:\n\t\tbreak;\n\t}\n\treturn 0;\n}\n")

    def test_switch_left_with_only_default_goes(self):
        src = ("int f(int t)\n{\n\tswitch (t) {\n\tcase GONE:\n\t\treturn 1;\n\tdefault:\n"
               "\t\tbreak;\n\t}\n\treturn 0;\n}\n")
        self.assertEqual(ctext.drop_case_labels(src, "GONE"), "int f(int t)\n{\n\treturn 0;\n}\n")

    def test_comment_paragraph(self):
        src = "/*\n * A:\n * about a\n *\n * more about a\n *\n * B:\n * about b\n */\n"
        self.assertEqual(ctext.drop_comment_paragraph(src, "A"), "/*\n * B:\n * about b\n */\n")


if __name__ == "__main__":
    unittest.main()
