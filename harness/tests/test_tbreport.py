"""Host tests of bench/profile/tbreport.py on made-up counts.

    python3 -m unittest discover -s harness/tests -v
"""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TBREPORT = ROOT / "bench" / "profile" / "tbreport.py"
sys.path.insert(0, str(TBREPORT.parent))

import tbreport  # noqa: E402  (needs the sys.path entry above)

SYSTEM_MAP = """\
ffffffff81000000 T _stext
ffffffff81000100 t hot_helper
ffffffff81000180 T walk_range
ffffffff81000400 W weak_one
ffffffff81000500 D some_data
ffffffff81000600 T _etext
"""


def kernel_dir(parent, name, counts):
    """A profile directory with SYSTEM_MAP and tbcount lines @counts."""
    d = Path(parent) / name
    d.mkdir()
    (d / "System.map").write_text(SYSTEM_MAP)
    (d / "tbcount.out").write_text(
        "".join(f"{va:x} {insns} {runs} {timed}\n"
                for va, insns, runs, timed in counts))
    return d


class PerFunction(unittest.TestCase):
    def test_blocks_add_up_per_function(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = kernel_dir(tmp, "ours", [
                (0xffffffff81000100, 5, 1000, 600),  # hot_helper, its start
                (0xffffffff81000140, 3, 10, 0),      # hot_helper, inside
                (0xffffffff81000180, 20, 7, 7),      # walk_range
                (0xffffffff81000410, 2, 4, 1),       # weak_one (W)
            ])
            whole = tbreport.per_function(str(d), whole=True)
            timed = tbreport.per_function(str(d))
        self.assertEqual(whole["hot_helper"], 5 * 1000 + 3 * 10)
        self.assertEqual(whole["walk_range"], 140)
        self.assertEqual(whole["weak_one"], 8)
        # a data symbol never takes a block
        self.assertNotIn("some_data", whole)
        # by default only the executions inside the timed windows count
        self.assertEqual(timed["hot_helper"], 5 * 600)
        self.assertEqual(timed["walk_range"], 140)
        self.assertEqual(timed["weak_one"], 2)

    def test_diff_names_the_function_that_grew(self):
        with tempfile.TemporaryDirectory() as tmp:
            ours = kernel_dir(tmp, "ours", [(0xffffffff81000100, 5, 1000, 1000),
                                            (0xffffffff81000180, 20, 7, 7)])
            ref = kernel_dir(tmp, "ref", [(0xffffffff81000180, 20, 7, 7)])
            out = subprocess.run([sys.executable, str(TBREPORT), str(ours), str(ref)],
                                 capture_output=True, text=True, check=True).stdout
        lines = out.splitlines()
        self.assertIn("ours 5140  reference 140", lines[0])
        self.assertEqual(lines[2].split(), ["+5000", "5000", "0", "hot_helper"])
        self.assertEqual(lines[3].split(), ["+0", "140", "140", "walk_range"])

    def test_no_window_counts_the_whole_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            ours = kernel_dir(tmp, "ours", [(0xffffffff81000100, 5, 10, 0)])
            ref = kernel_dir(tmp, "ref", [(0xffffffff81000100, 5, 8, 0)])
            out = subprocess.run([sys.executable, str(TBREPORT), str(ours), str(ref)],
                                 capture_output=True, text=True, check=True).stdout
        lines = out.splitlines()
        self.assertIn("counting the whole run", lines[0])
        self.assertIn("ours 50  reference 40", lines[1])


if __name__ == "__main__":
    unittest.main()
