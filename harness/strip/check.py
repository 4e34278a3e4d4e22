#!/usr/bin/env python3
"""Prove the strip complete: no symbol of the HMM family is left.

Usage: check.py TREE

Scans the whole tree.  In C sources and headers the family's identifiers
must not appear in code, and in the core kernel's comments nothing may name
its files, types or entries (COMMENT_NAMES); in Kconfig
files the removed symbols must not be defined, selected or depended on; in
Makefiles and documentation no removed file may be referenced.  The only
places allowed to keep them are the drivers that depend on the family and
so cannot be selected in a stripped tree.

Exit status 0 when clean, 1 with one line per hit otherwise.
"""

import os
import re
import subprocess
import sys

# Users of the family that become unselectable in the stripped tree.
UNSELECTABLE = (
    "drivers/gpu/drm/amd/",
    "drivers/gpu/drm/nouveau/",
    "drivers/gpu/drm/xe/",
    "drivers/infiniband/",
    "arch/powerpc/kvm/book3s_hv_uvmem.c",
    "arch/powerpc/include/asm/kvm_book3s_uvmem.h",
    "arch/powerpc/Kconfig",
    "arch/powerpc/configs/",
    "Documentation/translations/",
    "Documentation/gpu/",
)

# Identifiers of the family, as regular expressions over code.
C_SYMBOLS = [
    r"\b(?:is|is_writable)_device_(?:private|exclusive)_entry\b",
    r"\bmake_(?:readable|writable)_device_(?:private|exclusive)_entry\b",
    r"\bSWP_DEVICE_\w+",
    r"\bMEMORY_DEVICE_(?:PRIVATE|COHERENT)\b",
    r"\b(?:is_device_private_page|folio_is_device_private)\b",
    r"\b(?:is_device_coherent_page|folio_is_device_coherent)\b",
    r"\bmigrate_vma(?:_setup|_pages|_finalize|_direction)?\b",
    r"\bmigrate_device_(?:range|pages|finalize|coherent_folio)\b",
    r"\bMIGRATE_PFN_\w+",
    r"\bmigrate_pfn(?:_to_page)?\s*\(",
    r"\bMIGRATE_VMA_SELECT_\w+",
    r"\bmake_device_exclusive(?:_range)?\b",
    r"\bIORES_DESC_DEVICE_PRIVATE_MEMORY\b",
    r"\b(?:devm_)?request_free_mem_region\b",
    r"\bzone_device_page_init\b",
    r"\bmigrate_to_ram\b",
    r"\bhmm_range(?:_fault)?\b",
    r"\bHMM_PFN_\w+",
    r"\bhmm_pfn_to_(?:page|map_order)\b",
    r"\bHMM_RANGE_DEFAULT_TIMEOUT\b",
    r"\bMMU_NOTIFY_(?:MIGRATE|EXCLUSIVE)\b",
    r"\bCONFIG_(?:DEVICE_PRIVATE|HMM_MIRROR|DEVICE_MIGRATION|TEST_HMM)\b",
    r"<linux/hmm\.h>",
    r"\btest_hmm",
]
# Fixed strings that preselect candidate files quickly (grep -F).
PREFILTER = ["device_private_entry", "device_exclusive", "SWP_DEVICE_", "MEMORY_DEVICE_PRIVATE",
             "MEMORY_DEVICE_COHERENT", "device_private_page", "is_device_private",
             "device_coherent", "migrate_vma", "migrate_device_", "MIGRATE_PFN_", "migrate_pfn",
             "MIGRATE_VMA_SELECT", "IORES_DESC_DEVICE_PRIVATE", "request_free_mem_region",
             "zone_device_page_init", "migrate_to_ram", "hmm_range", "HMM_PFN_", "hmm_pfn_to",
             "HMM_RANGE_DEFAULT", "MMU_NOTIFY_MIGRATE", "MMU_NOTIFY_EXCLUSIVE",
             "DEVICE_PRIVATE", "HMM_MIRROR", "DEVICE_MIGRATION", "TEST_HMM", "hmm.h", "test_hmm",
             "hmm.rst", "hmm.c", "migrate_device.c", "hmm-tests", "hmm.txt", "MC_TARGET_DEVICE",
             "addressable ZONE_DEVICE", "addressable device", "device private", "device-private",
             "device exclusive", "device-exclusive", "Device private", "Device exclusive"]

KCONFIG_SYMBOLS = r"\b(?:DEVICE_PRIVATE|HMM_MIRROR|DEVICE_MIGRATION|TEST_HMM)\b"
KCONFIG_CODE = re.compile(r"^\s*(?:config|menuconfig|select|imply|depends on|default|"
                          r"visible if|if|range)\b.*" + KCONFIG_SYMBOLS, re.M)
REMOVED_FILES = re.compile(r"(?<![\w/-])(?:mm/hmm\.c|mm/migrate_device\.c|include/linux/hmm\.h|"
                           r"lib/test_hmm\w*\.[ch]|hmm-tests|test_hmm\.sh|mm/hmm\.rst|"
                           r"\bhmm\.o\b|\bmigrate_device\.o\b|\btest_hmm\.o\b)")
# In the comments of the core kernel (the folded roots of strip.py): what
# names the family's files, types or entries, or tells of device memory the
# CPU cannot address.
CORE_DIRS = ("mm/", "include/linux/", "kernel/", "fs/proc/", "lib/")
COMMENT_NAMES = re.compile(r"\bhmm\.(?:c|h|txt)\b|include/linux/hmm\b|"
                           r"\bMEMORY_DEVICE_(?:PRIVATE|COHERENT)\b|\bMC_TARGET_DEVICE\b|"
                           r"un-?addressable (?:ZONE_DEVICE|device)|"
                           r"device[ _-](?:private|exclusive) entr", re.I)
DOC_DIRECTIVE = re.compile(r"^\.\. (?:kernel-doc|include|literalinclude)::.*\bhmm\b|"
                           r"^\s+hmm\s*$|:doc:`[^`]*\bhmm`", re.M)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def candidates(tree):
    args = ["grep", "-rlF", "--exclude-dir=.git"]
    for s in PREFILTER:
        args += ["-e", s]
    res = subprocess.run(args + ["."], cwd=tree, capture_output=True, text=True)
    if res.returncode > 1:
        sys.exit("check: grep failed: %s" % res.stderr.strip())
    for line in res.stdout.splitlines():
        yield line[2:] if line.startswith("./") else line


def hits_in(rel, text):
    name = os.path.basename(rel)
    out = []
    if rel.endswith((".c", ".h")):
        code = strip_comments(text)
        for pat in C_SYMBOLS:
            for mo in re.finditer(pat, code):
                out.append((code.count("\n", 0, mo.start()) + 1, mo.group(0)))
        if rel.startswith(CORE_DIRS):
            for mo in COMMENT_NAMES.finditer(text):
                out.append((text.count("\n", 0, mo.start()) + 1, "comment: " + mo.group(0)))
    elif name.startswith("Kconfig"):
        for mo in KCONFIG_CODE.finditer(text):
            out.append((text.count("\n", 0, mo.start()) + 1, mo.group(0).strip()))
    elif name in ("Makefile", "Kbuild", "config") or name.endswith((".sh", ".mk")):
        for mo in REMOVED_FILES.finditer(text):
            out.append((text.count("\n", 0, mo.start()) + 1, mo.group(0)))
        for mo in re.finditer(r"\bCONFIG_(?:DEVICE_PRIVATE|HMM_MIRROR|DEVICE_MIGRATION|TEST_HMM)\b",
                              text):
            out.append((text.count("\n", 0, mo.start()) + 1, mo.group(0)))
    elif name.endswith(".rst"):
        for mo in DOC_DIRECTIVE.finditer(text):
            out.append((text.count("\n", 0, mo.start()) + 1, mo.group(0).strip()))
        for mo in re.finditer(r"\b(?:devm_)?request_free_mem_region\b|\bhmm\.rst\b", text):
            out.append((text.count("\n", 0, mo.start()) + 1, mo.group(0)))
    elif name == "MAINTAINERS":
        for mo in re.finditer(r"^F:.*\bhmm\b.*$", text, re.M):
            out.append((text.count("\n", 0, mo.start()) + 1, mo.group(0)))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check.py TREE")
    tree = sys.argv[1]
    for rel in ("mm/hmm.c", "mm/migrate_device.c", "include/linux/hmm.h", "lib/test_hmm.c",
                "lib/test_hmm_uapi.h", "tools/testing/selftests/mm/hmm-tests.c",
                "Documentation/mm/hmm.rst"):
        if os.path.exists(os.path.join(tree, rel)):
            print("%s: still present" % rel)
            sys.exit(1)
    bad = 0
    for rel in sorted(candidates(tree)):
        if rel.startswith(UNSELECTABLE):
            continue
        with open(os.path.join(tree, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for line, what in hits_in(rel, text):
            print("%s:%d: %s" % (rel, line, what))
            bad += 1
    if bad:
        print("strip check: %d remnant(s) of the HMM family left" % bad)
        sys.exit(1)
    print("strip check: no symbol of the HMM family is left")


if __name__ == "__main__":
    main()
