#!/usr/bin/env python3
"""Assemble the build tree from the project, and export it back.

    series.py assemble [--force]   stripped base + patches/series -> build/tree
    series.py export [--to DIR]    build/tree -> patches/ + the project's files
    series.py tree                 print the git tree assemble would give

The build tree is a git repository: its first commit (tag `base`) is the
stripped base, then one commit per patch of patches/series.  A patch edits
files of the base kernel; the files the project owns whole (at their kernel
paths in this repository) are listed in patches/series under the patch whose
commit adds them:

    0001-mm-add-something.patch
            mm/something.c
            include/linux/something.h

Each project-owned file is added whole by exactly one commit; no later
commit may change it (its lines live in one place: the project's file).

Commits are made with plumbing on a private index, with the author and date
of the patch, so the same project gives the same commits, and the work tree
is only checked out when the result differs from what it holds: unchanged
files keep their timestamps and a rebuild after a no-op assemble is quick.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ASSEMBLED = "hmm-assembled"      # file in .git: the commit assemble made last
BASE_STAMP = "hmm-base-stamp"    # file in .git: the strip stamp of the base
IDENTITY = ("HMM series project", "hmm-series@localhost")
BASE_DATE = "2024-11-17T00:00:00+00:00"


class SeriesError(Exception):
    pass


def git(tree, *args, env=None, input=None, check=True):
    full_env = dict(os.environ)
    full_env.update(env or {})
    res = subprocess.run(["git", "-C", tree] + list(args), capture_output=True, text=True,
                         env=full_env, input=input)
    if check and res.returncode:
        raise SeriesError("git %s failed: %s" % (" ".join(args[:2]), res.stderr.strip()))
    return res.stdout


def read_series(root):
    """[(patch_name, [owned files])] from ROOT/patches/series."""
    path = os.path.join(root, "patches", "series")
    entries = []
    if not os.path.exists(path):
        return entries
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t":
                if not entries:
                    raise SeriesError("patches/series:%d: a file before any patch" % n)
                entries[-1][1].append(line.strip())
            else:
                entries.append((line.strip(), []))
    return entries


def write_series(root, entries):
    lines = ["# The series, in order.  Under each patch: the files of this repository",
             "# that its commit adds whole (see harness/series.py).", ""]
    for name, owned in entries:
        lines.append(name)
        lines.extend("\t" + path for path in owned)
    os.makedirs(os.path.join(root, "patches"), exist_ok=True)
    with open(os.path.join(root, "patches", "series"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# assemble


def ensure_base(tree, stripped):
    """Make sure tree is a git repository whose `base` is the stripped tree."""
    stamp_file = os.path.join(stripped, ".stripped")
    if not os.path.exists(stamp_file):
        raise SeriesError("no stripped base at %s (run: make strip)" % stripped)
    with open(stamp_file) as f:
        stamp = f.read().strip()
    mine = os.path.join(tree, ".git", BASE_STAMP)
    if os.path.exists(mine) and open(mine).read().strip() == stamp:
        return False
    print("    creating the build tree from the stripped base (takes a minute)")
    tmp = tree + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(stripped, tmp, symlinks=True)
    os.remove(os.path.join(tmp, ".stripped"))
    git(tmp, "init", "-q", "-b", "series")
    git(tmp, "config", "user.name", IDENTITY[0])
    git(tmp, "config", "user.email", IDENTITY[1])
    git(tmp, "config", "core.autocrlf", "false")
    git(tmp, "add", "-A", "-f", ".")
    env = identity_env(IDENTITY[0], IDENTITY[1], BASE_DATE)
    git(tmp, "commit", "-q", "-m", "Stripped base: Linux without its own HMM\n\n"
        "Made by harness/strip.sh (strip stamp %s)." % stamp, env=env)
    git(tmp, "tag", "base")
    with open(os.path.join(tmp, ".git", BASE_STAMP), "w") as f:
        f.write(stamp + "\n")
    with open(os.path.join(tmp, ".git", ASSEMBLED), "w") as f:
        f.write(git(tmp, "rev-parse", "HEAD").strip() + "\n")
    shutil.rmtree(tree, ignore_errors=True)
    os.rename(tmp, tree)
    return True


def identity_env(name, email, date):
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": date}


def split_patch(tree, path):
    """(author, email, date, message, diff) of a format-patch mail."""
    with tempfile.TemporaryDirectory() as tmp:
        msg, diff = os.path.join(tmp, "msg"), os.path.join(tmp, "diff")
        with open(path, encoding="utf-8") as f:
            info = git(tree, "mailinfo", "-b", msg, diff, input=f.read())
        fields = dict(re.findall(r"^(\w+): (.*)$", info, re.M))
        with open(msg, encoding="utf-8") as f:
            body = f.read().strip()
        with open(diff, encoding="utf-8") as f:
            diff_text = f.read()
    subject = fields.get("Subject", "").strip()
    if not subject:
        raise SeriesError("%s: no Subject" % os.path.basename(path))
    message = subject + ("\n\n" + body if body else "") + "\n"
    return fields.get("Author", IDENTITY[0]), fields.get("Email", IDENTITY[1]), \
        fields.get("Date", BASE_DATE), message, diff_text


def explain_failure(name, diff_text, stderr):
    """Name the patch, the file and the hunk that did not apply."""
    out = ["patch %s does not apply" % name]
    mo = re.search(r"error: patch failed: ([^:\n]+):(\d+)", stderr)
    if mo:
        path, line = mo.group(1), int(mo.group(2))
        out.append("  file: %s" % path)
        hunks = re.split(r"(?m)^(?=diff --git )", diff_text)
        for h in hunks:
            if h.startswith("diff --git a/%s " % path):
                for hm in re.finditer(r"(?m)^@@ -(\d+)(?:,\d+)? .*$", h):
                    if int(hm.group(1)) == line:
                        out.append("  hunk: %s" % hm.group(0))
    else:
        mo = re.search(r"error: ([^:\n]+): (does not exist in index|already exists in index)",
                       stderr)
        if mo:
            out.append("  file: %s (%s)" % (mo.group(1), mo.group(2)))
    out.append("  git says: " + " | ".join(ln for ln in stderr.strip().splitlines()[:6]))
    return "\n".join(out)


def build_commits(tree, root, entries):
    """Make the series' commits on top of `base`; return the last one."""
    parent = git(tree, "rev-parse", "base^{commit}").strip()
    index = os.path.join(tree, ".git", "hmm-assemble-index")
    env = {"GIT_INDEX_FILE": index}
    owned_by = {}
    try:
        for name, owned in entries:
            path = os.path.join(root, "patches", name)
            if not os.path.exists(path):
                raise SeriesError("patches/series names %s, which does not exist" % name)
            author, email, date, message, diff_text = split_patch(tree, path)
            git(tree, "read-tree", parent, env=env)
            if "\ndiff --git " in "\n" + diff_text:
                res = subprocess.run(["git", "-C", tree, "apply", "--cached", "--whitespace=nowarn",
                                      "-"], input=diff_text, capture_output=True, text=True,
                                     env=dict(os.environ, **env))
                if res.returncode:
                    raise SeriesError(explain_failure(name, diff_text, res.stderr))
            for rel in owned:
                if rel in owned_by:
                    raise SeriesError("%s is listed under both %s and %s" %
                                      (rel, owned_by[rel], name))
                owned_by[rel] = name
                src = os.path.join(root, rel)
                if not os.path.isfile(src):
                    raise SeriesError("patches/series lists %s under %s, but it does not exist"
                                      % (rel, name))
                if git(tree, "ls-files", "--", rel, env=env).strip():
                    raise SeriesError("%s (listed under %s) already exists in the tree: a "
                                      "project-owned file must be new" % (rel, name))
                blob = git(tree, "hash-object", "-w", "--", src).strip()
                mode = "100755" if os.access(src, os.X_OK) else "100644"
                git(tree, "update-index", "--add", "--cacheinfo", "%s,%s,%s" % (mode, blob, rel),
                    env=env)
            new_tree = git(tree, "write-tree", env=env).strip()
            parent = git(tree, "commit-tree", new_tree, "-p", parent,
                         env=identity_env(author, email, date), input=message).strip()
    finally:
        if os.path.exists(index):
            os.remove(index)
    return parent


def check_clean(tree):
    """Refuse to overwrite work in the build tree that was not exported."""
    rec = os.path.join(tree, ".git", ASSEMBLED)
    head = git(tree, "rev-parse", "HEAD").strip()
    last = open(rec).read().strip() if os.path.exists(rec) else None
    dirty = git(tree, "status", "--porcelain", "--untracked-files=no").strip()
    if head != last or dirty:
        raise SeriesError("build/tree has work that was not exported (%s).\n"
                          "  Run `make export` to keep it, or `make assemble FORCE=1` to drop it."
                          % ("uncommitted changes" if dirty else "commits since the last assemble"))


def assemble(root, tree, stripped, force):
    entries = read_series(root)
    fresh = ensure_base(tree, stripped)
    if not fresh and not force:
        check_clean(tree)
    final = build_commits(tree, root, entries)
    head = git(tree, "rev-parse", "HEAD").strip()
    if final != head or force:
        git(tree, "checkout", "-q", "-f", "-B", "series", final)
        state = "updated"
    else:
        state = "unchanged"
    with open(os.path.join(tree, ".git", ASSEMBLED), "w") as f:
        f.write(final + "\n")
    print("    %d patch(es) on the stripped base; build tree %s (%s)" %
          (len(entries), state, final[:12]))


# --------------------------------------------------------------------------
# export


def export(root, tree, to):
    dirty = git(tree, "status", "--porcelain", "--untracked-files=no").strip()
    if dirty:
        raise SeriesError("build/tree has uncommitted changes: commit them first")
    commits = git(tree, "rev-list", "--reverse", "base..HEAD").split()
    old = read_series(to)
    entries = []
    owned_all = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(commits, 1):
            status = git(tree, "diff-tree", "-r", "--no-commit-id", "--name-status",
                         "--no-renames", c + "^", c)
            owned = []
            for line in status.splitlines():
                kind, path = line.split("\t", 1)
                if path in owned_all:
                    raise SeriesError("commit %d (%s) changes %s, which commit %s added: owned "
                                      "files are added whole by one commit; squash the change "
                                      "into that commit" % (i, c[:12], path, owned_all[path]))
                if kind == "A":
                    owned.append(path)
            for path in owned:
                owned_all[path] = c[:12]
            spec = ["."] + [":(exclude)" + p for p in owned]
            out = git(tree, "format-patch", "-o", tmp, "--start-number", str(i),
                      "--zero-commit", "--no-signature", "-N", "--subject-prefix=PATCH", "--full-index",
                      "--stat=80", c + "^.." + c, "--", *spec).strip()
            if not out:
                # every change is a project-owned file: keep the message alone
                out = git(tree, "format-patch", "-o", tmp, "--start-number", str(i),
                          "--zero-commit", "--no-signature", "-N", "--subject-prefix=PATCH", "--full-index",
                          c + "^.." + c).strip()
                with open(out, encoding="utf-8") as f:
                    text = f.read()
                text = text[:text.index("\n---\n") + 5] if "\n---\n" in text else text
                with open(out, "w", encoding="utf-8") as f:
                    f.write(text)
            entries.append((os.path.basename(out), owned))
        pdir = os.path.join(to, "patches")
        os.makedirs(pdir, exist_ok=True)
        for name in os.listdir(pdir):
            if name.endswith(".patch"):
                os.remove(os.path.join(pdir, name))
        for name, _ in entries:
            shutil.copyfile(os.path.join(tmp, name), os.path.join(pdir, name))
    for _, owned in old:
        for path in owned:
            if path not in owned_all and os.path.exists(os.path.join(to, path)):
                os.remove(os.path.join(to, path))
    for path in owned_all:
        dest = os.path.join(to, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        blob = subprocess.run(["git", "-C", tree, "show", "HEAD:" + path],
                              capture_output=True, check=True).stdout
        with open(dest, "wb") as f:
            f.write(blob)
        mode = git(tree, "ls-tree", "HEAD", "--", path).split()[0]
        os.chmod(dest, 0o755 if mode == "100755" else 0o644)
    write_series(to, entries)
    if os.path.abspath(to) == os.path.abspath(root):
        with open(os.path.join(tree, ".git", ASSEMBLED), "w") as f:
            f.write(git(tree, "rev-parse", "HEAD").strip() + "\n")
    print("    exported %d patch(es) and %d project-owned file(s) to %s" %
          (len(entries), len(owned_all), to))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=ROOT, help="the project (default: this repository)")
    ap.add_argument("--tree", help="the build tree (default: ROOT/build/tree)")
    ap.add_argument("--stripped", help="the stripped base (default: ROOT/build/stripped)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("assemble")
    a.add_argument("--force", action="store_true", help="drop work in the tree not exported")
    sub.add_parser("tree")
    e = sub.add_parser("export")
    e.add_argument("--to", help="write into this directory instead of the project")
    args = ap.parse_args()
    build = os.environ.get("BUILD", os.path.join(args.root, "build"))
    tree = args.tree or os.path.join(build, "tree")
    stripped = args.stripped or os.path.join(build, "stripped")
    try:
        if args.cmd == "assemble":
            assemble(args.root, tree, stripped, args.force)
        elif args.cmd == "tree":
            final = build_commits(tree, args.root, read_series(args.root))
            print(git(tree, "rev-parse", final + "^{tree}").strip())
        else:
            export(args.root, tree, args.to or args.root)
    except SeriesError as err:
        sys.exit("error: %s" % err)


if __name__ == "__main__":
    main()
