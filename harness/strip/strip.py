#!/usr/bin/env python3
"""Remove the base kernel's own HMM family from a Linux 6.12 source tree.

Usage: strip.py TREE

The tree is edited in place.  Every step is a deletion or a mechanical,
name-keyed transformation (see ctext.py); no removed code is stored here.
The family is: device-private and device-coherent ZONE_DEVICE memory, the
device-private and device-exclusive swap entries, hmm_range_fault(),
migrate_vma_*() / migrate_device_*(), make_device_exclusive_range(), the
test_hmm driver, its selftests and Documentation/mm/hmm.rst.

After this step check.py must find none of the family's symbols left.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctext  # noqa: E402
from ctext import FALSE, TRUE  # noqa: E402

DELETE_FILES = [
    "mm/hmm.c",
    "mm/migrate_device.c",
    "include/linux/hmm.h",
    "lib/test_hmm.c",
    "lib/test_hmm_uapi.h",
    "tools/testing/selftests/mm/hmm-tests.c",
    "tools/testing/selftests/mm/test_hmm.sh",
    "Documentation/mm/hmm.rst",
]

# Kconfig symbols removed with their whole entry, and every select of them.
KCONFIG_SYMBOLS = ["DEVICE_PRIVATE", "HMM_MIRROR", "DEVICE_MIGRATION", "TEST_HMM"]
KCONFIG_FILES = ["mm/Kconfig", "lib/Kconfig.debug"]

# (file, regex of lines to drop) in build, test and documentation files
LINE_EDITS = [
    ("mm/Makefile", r"^obj-\$\(CONFIG_(DEVICE_MIGRATION|HMM_MIRROR)\).*\n"),
    ("lib/Makefile", r"^obj-\$\(CONFIG_TEST_HMM\).*\n"),
    ("tools/testing/selftests/mm/Makefile", r"^TEST_GEN_FILES \+= hmm-tests\n"),
    ("tools/testing/selftests/mm/Makefile", r"^TEST_FILES \+= test_hmm\.sh\n"),
    ("tools/testing/selftests/mm/config", r"^CONFIG_(DEVICE_PRIVATE|TEST_HMM)=.*\n"),
    ("Documentation/mm/index.rst", r"^\s+hmm\n"),
    ("Documentation/core-api/mm-api.rst", r"^\.\. kernel-doc:: mm/migrate_device\.c\n(   :.*\n)*"),
    ("Documentation/core-api/mm-api.rst", r"^\.\. #kernel-doc:: mm/hmm\.c.*\n"),
    ("Documentation/driver-api/driver-model/devres.rst", r"^  devm_request_free_mem_region\(\)\n"),
    ("tools/testing/selftests/mm/run_vmtests.sh", r"^- hmm\n\thmm smoke tests\n"),
    ("tools/testing/selftests/mm/run_vmtests.sh", r"^CATEGORY=\"hmm\" run_test .*\n"),
    ("Documentation/mm/memory-model.rst", r"^\* hmm: .*\n(  .*\n)*\n"),
    ("Documentation/mm/page_migration.rst", r"^Also see Documentation/mm/hmm\.rst.*\n(.+\n)*\n"),
    ("MAINTAINERS", r"^HMM - Heterogeneous Memory Management\n(.+\n)*\n"),
]

# Configuration macros whose #if blocks go (unifdef -U).
UNDEF_MACROS = ["CONFIG_DEVICE_PRIVATE", "CONFIG_DEVICE_MIGRATION", "CONFIG_HMM_MIRROR"]

# Predicates that are false once the family is gone.
FALSE_PREDICATES = [
    "is_device_private_entry", "is_writable_device_private_entry",
    "is_device_exclusive_entry", "is_writable_device_exclusive_entry",
    "is_device_private_page", "folio_is_device_private",
    "is_device_coherent_page", "folio_is_device_coherent",
]

# Constants that no object carries any more: x == C is false, x != C true.
# MC_TARGET_DEVICE is memcg v1's charge-moving target for device pages.
GONE_CONSTANTS = ["MEMORY_DEVICE_PRIVATE", "MEMORY_DEVICE_COHERENT",
                  "IORES_DESC_DEVICE_PRIVATE_MEMORY", "MC_TARGET_DEVICE"]

# Definitions removed by name, per file.
DEFINITIONS = {
    "include/linux/swapops.h": {
        "function": FALSE_PREDICATES[:4] + [
            "make_readable_device_private_entry", "make_writable_device_private_entry",
            "make_readable_device_exclusive_entry", "make_writable_device_exclusive_entry"],
    },
    "include/linux/swap.h": {
        # the SWP_DEVICE_* types went with their #ifdef; the count is a term
        # of other macros
        "macro_term": ["SWP_DEVICE_NUM"],
    },
    "include/linux/memremap.h": {
        "function": ["is_device_private_page", "folio_is_device_private",
                     "is_device_coherent_page", "folio_is_device_coherent",
                     "zone_device_page_init"],
        "enum_member": ["MEMORY_DEVICE_PRIVATE", "MEMORY_DEVICE_COHERENT"],
        "member": [("dev_pagemap_ops", "migrate_to_ram"), ("dev_pagemap", "owner")],
        "comment": ["MEMORY_DEVICE_PRIVATE", "MEMORY_DEVICE_COHERENT", "owner"],
    },
    "include/linux/migrate.h": {
        "macro": ["MIGRATE_PFN_VALID", "MIGRATE_PFN_MIGRATE", "MIGRATE_PFN_WRITE",
                  "MIGRATE_PFN_SHIFT"],
        "function": ["migrate_pfn_to_page", "migrate_pfn", "migrate_vma_setup",
                     "migrate_vma_pages", "migrate_vma_finalize", "migrate_device_range",
                     "migrate_device_pages", "migrate_device_finalize"],
        "enum": ["migrate_vma_direction"],
        "struct": ["migrate_vma"],
    },
    "include/linux/rmap.h": {"function": ["make_device_exclusive_range"]},
    "include/linux/ioport.h": {
        "function": ["devm_request_free_mem_region", "request_free_mem_region"],
        "enum_member": ["IORES_DESC_DEVICE_PRIVATE_MEMORY"],
    },
    "kernel/resource.c": {
        "function": ["devm_request_free_mem_region", "request_free_mem_region"],
    },
    "mm/internal.h": {"function": ["migrate_device_coherent_folio"]},
    "mm/memcontrol-v1.c": {"enum_member": ["MC_TARGET_DEVICE"]},
    "mm/memremap.c": {"function": ["zone_device_page_init"]},
    "include/linux/mmu_notifier.h": {
        "enum_member": ["MMU_NOTIFY_MIGRATE", "MMU_NOTIFY_EXCLUSIVE"],
        "comment": ["MMU_NOTIFY_MIGRATE", "MMU_NOTIFY_EXCLUSIVE"],
    },
}

# Functions that only served the family and are dead once its hooks are
# folded away (removed after folding).
DEAD_AFTER_FOLD = {
    "mm/memory.c": ["remove_device_exclusive_entry", "try_restore_exclusive_pte",
                    "restore_exclusive_pte"],
}

# What folding leaves behind, removed after it, so that the stripped base
# reads as a kernel that never had the family: comments that speak of it,
# branches that only served it and now just return, and what only fed the
# branches.  (file, regex, replacement); each must match.
AFTER_FOLD_EDITS = [
    # is_pfn_swap_entry(): the comment lists device memory among its uses
    ("include/linux/swapops.h",
     r"^/\*\n \* A pfn swap entry is a special type of swap entry .*\n(?: \*.*\n)*? \*/\n"
     r"(?=static inline bool is_pfn_swap_entry\()", ""),
    # memremap_pages(): why device-private memory gets no linear mapping
    ("mm/memremap.c",
     r"^\t/\*\n\t \* For device private memory we call add_pages\(\).*\n(?:\t \*.*\n)*?\t \*/\n",
     ""),
    # map_pte() and check_pte(): swap PTEs that mapped device memory
    ("mm/page_vma_mapped.c",
     r"^\t\} else if \(is_swap_pte\(ptent\)\) \{\n\t\tswp_entry_t entry;\n"
     r"\t\t/\*\n\t\t \* Handle un-addressable ZONE_DEVICE memory\.\n(?:\t\t \*.*\n)*?\t\t \*/\n"
     r"\t\tentry = pte_to_swp_entry\(ptent\);\n\t\treturn false;\n"
     r"(?=\t\} else if \(!pte_present\(ptent\)\) \{\n)", ""),
    ("mm/page_vma_mapped.c",
     r"^\t\} else if \(is_swap_pte\(ptent\)\) \{\n\t\tswp_entry_t entry;\n\n"
     r"\t\t/\* Handle un-addressable ZONE_DEVICE memory \*/\n"
     r"\t\tentry = pte_to_swp_entry\(ptent\);\n\t\treturn false;\n\n"
     r"\t\tpfn = swp_offset_pfn\(entry\);\n(?=\t\} else \{\n)", ""),
    # try_to_migrate_one(): only device pages had a PTE pte_pfn() cannot read
    ("mm/rmap.c",
     r"^\t\tif \(folio_is_zone_device\(folio\)\) \{\n\t\t\t/\*\n"
     r"\t\t\t \* Our PTE is a non-present device exclusive entry and\n(?:\t\t\t \*.*\n)*?"
     r"\t\t\t \*/\n\t\t\tVM_BUG_ON_FOLIO\(.*\n\t\t\tsubpage = &folio->page;\n"
     r"\t\t\} else \{\n\t\t\t(subpage = folio_page\(folio, pfn - folio_pfn\(folio\)\);\n)"
     r"\t\t\}\n", r"\t\t\1"),
    # copy_pte_range(): copy_nonpresent_pte() no longer restores a present
    # PTE for the caller to copy (-ENOENT) nor fails to (-EBUSY)
    ("mm/memory.c",
     r"^(\t\t\tif \(ret == -EIO\) \{\n\t\t\t\tentry = .*\n\t\t\t\tbreak;\n)"
     r"\t\t\t\} else if \(ret == -EBUSY\) \{\n\t\t\t\tbreak;\n"
     r"\t\t\t\} else if \(!ret\) \{\n\t\t\t\tprogress \+= 8;\n\t\t\t\tcontinue;\n\t\t\t\}\n"
     r"\t\t\tptent = ptep_get\(src_pte\);\n\t\t\tVM_WARN_ON_ONCE\(!pte_present\(ptent\)\);\n\n"
     r"\t\t\t/\*\n\t\t\t \* Device exclusive entry restored, .*\n(?:\t\t\t \*.*\n)*?\t\t\t \*/\n"
     r"\t\t\tWARN_ON_ONCE\(ret != -ENOENT\);\n\t\t\}\n",
     r"\1\t\t\t}\n\t\t\tprogress += 8;\n\t\t\tcontinue;\n\t\t}\n"),
    # smaps: the sentence about device-private entries
    ("fs/proc/task_mmu.c",
     r"(often\"\.) We treat device private entries as being fake-present\.\n", r"\1\n"),
    # memcg v1 charge moving: the MC_TARGET_DEVICE documentation and the
    # local that told its case from MC_TARGET_PAGE
    ("mm/memcontrol-v1.c",
     r"^ \* \* MC_TARGET_DEVICE - .*\n(?: \*   .*\n)*", ""),
    ("mm/memcontrol-v1.c",
     r"^\t\t/\*\n\t\t \* Note their can not be MC_TARGET_DEVICE .*\n(?:\t\t \*.*\n)*?\t\t \*/\n",
     ""),
    ("mm/memcontrol-v1.c", r"^\t\tbool device = false;\n", ""),
    ("mm/memcontrol-v1.c", r"!device && ", ""),
    ("mm/memcontrol-v1.c", r"^\t\t\tif \(!device\)\n\t(\t\t\tfolio_putback_lru\(folio\);\n)",
     r"\1"),
]

# An `#if 0` that unifdef could not take out (IS_ENABLED() of a family
# macro) and whose contents were all removed: with its empty #else, if any.
EMPTY_IF0 = re.compile(r"^#\s*if 0\b.*\n(?:[ \t]*\n)*(?:#\s*else\b.*\n(?:[ \t]*\n)*)?"
                       r"#\s*endif\b.*\n(?:[ \t]*\n)?", re.M)

# Files whose code is folded (every C file that uses a family predicate or
# constant is found by search; these are the roots searched).
SEARCH_ROOTS = ["mm", "include/linux", "kernel", "fs/proc", "lib"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def delete_files(tree):
    for rel in DELETE_FILES:
        path = os.path.join(tree, rel)
        if not os.path.exists(path):
            raise ctext.StripError("expected file missing: %s" % rel)
        os.remove(path)


def strip_kconfig(tree):
    block_end = re.compile(r"^(config|menuconfig|menu|endmenu|choice|endchoice|if|endif|"
                           r"source|comment|#)\b", re.M)
    for rel in KCONFIG_FILES:
        path = os.path.join(tree, rel)
        text = read(path)
        for sym in KCONFIG_SYMBOLS:
            mo = re.search(r"^config %s\n" % sym, text, re.M)
            if not mo:
                continue
            end = block_end.search(text, mo.end())
            end = end.start() if end else len(text)
            start = mo.start()
            # a '#' comment block directly above describes this entry
            while True:
                prev = text.rfind("\n", 0, start - 1) + 1
                if start > 0 and text[prev:start].startswith("#"):
                    start = prev
                else:
                    break
            text = text[:start] + text[end:]
        for sym in KCONFIG_SYMBOLS:
            text = re.sub(r"^\s+(select|imply) %s\b.*\n" % sym, "", text, flags=re.M)
        text = re.sub(r"\n{3,}", "\n\n", text)
        write(path, text)


def strip_lines(tree):
    for rel, pattern in LINE_EDITS:
        path = os.path.join(tree, rel)
        text = read(path)
        new = re.sub(pattern, "", text, flags=re.M)
        if new == text:
            raise ctext.StripError("%s: nothing matched %s" % (rel, pattern))
        write(path, new)


def c_files(tree):
    for root in SEARCH_ROOTS:
        for dirpath, _, files in os.walk(os.path.join(tree, root)):
            for name in files:
                if name.endswith((".c", ".h")):
                    yield os.path.join(dirpath, name)


def undefine(line):
    """Write the family's macros in an #if line as 0 and fold `|| 0`.

    unifdef leaves an expression alone when part of it stays unknown, so
    `#if defined(CONFIG_SWAP) || defined(CONFIG_DEVICE_PRIVATE)` is reduced
    here to `#if defined(CONFIG_SWAP)`.
    """
    names = "|".join(UNDEF_MACROS)
    line = re.sub(r"(?:defined|IS_ENABLED)\s*\(\s*(?:%s)\s*\)|defined\s+(?:%s)\b" % (names, names),
                  "0", line)
    line = re.sub(r"\s*\|\|\s*0\b(?!\s*&&)", "", line)
    return re.sub(r"(#\s*(?:el)?if\s+)0\s*\|\|\s*", r"\1", line)


def unifdef(tree):
    pat = re.compile("|".join(UNDEF_MACROS))
    for path in c_files(tree):
        text = read(path)
        if not pat.search(text):
            continue
        text = re.sub(r"^\s*#\s*(?:el)?if\b.*$", lambda mo: undefine(mo.group(0)), text, flags=re.M)
        write(path, text)
        args = ["unifdef", "-m"] + ["-U" + macro for macro in UNDEF_MACROS] + [path]
        res = subprocess.run(args, capture_output=True, text=True)
        if res.returncode not in (0, 1):
            raise ctext.StripError("unifdef failed on %s: %s" % (path, res.stderr.strip()))


def drop_definitions(tree, table):
    for rel, kinds in table.items():
        path = os.path.join(tree, rel)
        text = read(path)
        for kind, names in kinds.items():
            for name in names:
                if kind == "function":
                    text = ctext.drop_function(text, name)
                elif kind == "macro":
                    text = ctext.drop_macro(text, name)
                elif kind == "macro_term":
                    text = ctext.drop_macro(text, name)
                    text = ctext.drop_term(text, name)
                elif kind in ("struct", "enum"):
                    text = ctext.drop_type(text, kind, name)
                elif kind == "enum_member":
                    text = ctext.drop_enum_member(text, name)
                elif kind == "member":
                    text = ctext.drop_member(text, name[0], name[1])
                elif kind == "comment":
                    text = ctext.drop_comment_paragraph(text, name)
                else:
                    raise ctext.StripError("unknown kind %s" % kind)
        write(path, text)


def fold_family(tree):
    names = re.compile(r"\b(%s)\b" % "|".join(FALSE_PREDICATES + GONE_CONSTANTS +
                                             ["IS_ENABLED\\(CONFIG_DEVICE_PRIVATE\\)"]))
    for path in c_files(tree):
        text = read(path)
        if not names.search(ctext.mask(text)):
            continue
        for name in GONE_CONSTANTS:
            text = ctext.drop_case_labels(text, name)
            text = ctext.replace_comparisons(text, name)
        for name in FALSE_PREDICATES:
            text = ctext.replace_calls(text, name, FALSE)
        text = re.sub(r"\bIS_ENABLED\(CONFIG_DEVICE_PRIVATE\)", FALSE, text)
        touched = ctext.functions_with_sentinels(text)
        text = ctext.fold_all(text)
        text = ctext.drop_unused_locals(text, touched)
        write(path, text)


def after_fold(tree):
    for rel, pattern, repl in AFTER_FOLD_EDITS:
        path = os.path.join(tree, rel)
        text = read(path)
        new, count = re.subn(pattern, repl, text, flags=re.M)
        if not count:
            raise ctext.StripError("%s: nothing matched %s" % (rel, pattern))
        write(path, new)
    for path in c_files(tree):
        text = read(path)
        new = EMPTY_IF0.sub("", text)
        if new != text:
            write(path, new)


def main():
    if len(sys.argv) != 2 or not os.path.isfile(os.path.join(sys.argv[1], "Makefile")):
        sys.exit("usage: strip.py LINUX_TREE")
    tree = sys.argv[1]
    try:
        delete_files(tree)
        strip_kconfig(tree)
        strip_lines(tree)
        unifdef(tree)
        drop_definitions(tree, DEFINITIONS)
        fold_family(tree)
        drop_definitions(tree, {k: {"function": v} for k, v in DEAD_AFTER_FOLD.items()})
        after_fold(tree)
    except ctext.StripError as e:
        sys.exit("strip: %s" % e)


if __name__ == "__main__":
    main()
