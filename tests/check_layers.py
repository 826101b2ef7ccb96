#!/usr/bin/env python3
"""check_layers.py — the layering of the sources, checked from the text.

Three rules, each a failure when broken:
  1. No cycle among the files of an ENFORCED folder, its subfolders included
     (default: fs, and fs/read on its own): file A depends on file B when A
     names a function B defines (a call, or the function's address) and A
     does not define one by that name itself, or when A includes B's header
     (B.h beside B.c).  A cycle of any length fails; the way up is a
     callback registered through a function pointer (fs/zfs.h's
     zf_fs_hooks, the read path's callbacks).
  2. No library folder (xet/ cache/ net/) includes a header of fs/.
  3. No file of an enforced folder declares another file's function itself
     (a prototype at file scope, not static, of a function defined in
     another file): it includes that file's header instead.

Folders given with --report have their cycles printed but do not fail.

A small regex scan (comments and strings stripped): a definition is a line
at column 0 that names a function and opens its body; a use is the name
anywhere else.  Usage: check_layers.py [SRCROOT] [--enforce DIR]...
[--report DIR]...  Exit 0 pass, 1 fail."""
import argparse
import os
import re
import sys

LIBS = ("xet", "cache", "net")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
DECL = re.compile(r"^([A-Za-z_][\w \t\*]*?)\b(\w+)\s*\([^;{}()]*(?:\([^;{}()]*\)[^;{}()]*)*\)\s*;", re.M)
DEF = re.compile(r"^([A-Za-z_][\w \t\*]*?)\b(\w+)\s*\([^;{]*\)\s*\{", re.M)
IDENT = re.compile(r"(?<![\w.>])[A-Za-z_]\w*\b")  # not a member (a.x, a->x)
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof"}


def code_of(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return STRING.sub('""', COMMENT.sub(" ", text)), text


def sources(root, rel, recurse):
    base = os.path.join(root, rel)
    out = []
    for dirpath, dirs, files in os.walk(base):
        dirs.sort()
        for n in sorted(files):
            if n.endswith(".c"):
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
        if not recurse:
            break
    return out


def graph(root, files):
    """Edges file -> {file: why} among files."""
    defs, code, incs, owner = {}, {}, {}, {}
    for p in files:
        c, raw = code_of(os.path.join(root, p))
        code[p] = c
        incs[p] = INCLUDE.findall(raw)
        found = [(ty, n) for ty, n in DEF.findall(c) if n not in KEYWORDS]
        defs[p] = {n for _, n in found}
        for ty, n in found:  # a static one is no other file's to use
            if not re.search(r"\bstatic\b", ty):
                owner.setdefault(n, set()).add(p)
    headers = {}
    for p in files:
        headers[os.path.join(os.path.dirname(p), os.path.basename(p)[:-2] + ".h")] = p
    edges = {p: {} for p in files}
    for p in files:
        used = set(IDENT.findall(code[p])) - defs[p]
        for name in sorted(used):
            for q in owner.get(name, ()):
                if q != p:
                    edges[p].setdefault(q, "uses %s()" % name)
        for h in incs[p]:
            q = headers.get(os.path.normpath(os.path.join(os.path.dirname(p), h)))
            if q and q != p:
                edges[p].setdefault(q, 'includes "%s"' % h)
    return edges


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def describe(edges, comp):
    lines = []
    s = set(comp)
    for a in comp:
        for b, why in sorted(edges[a].items()):
            if b in s:
                lines.append("    %s -> %s (%s)" % (a, b, why))
    return "\n".join(lines)


def check_scope(root, rel, enforce):
    files = sources(root, rel, True)
    if not files:
        print("check_layers: %s: no sources" % rel)
        return not enforce
    edges = graph(root, files)
    comps = cycles(edges)
    what = "FAIL" if enforce else "note"
    for comp in comps:
        print("%s: %s: a cycle among %d files:\n%s" % (what, rel, len(comp), describe(edges, comp)))
    if not comps:
        print("ok: %s: %d files, no cycle" % (rel, len(files)))
    protos = own_prototypes(root, files)
    for line in protos:
        print("%s: %s" % (what, line))
    if not protos:
        print("ok: %s: no file declares another file's function itself" % rel)
    return not (enforce and (comps or protos))


def own_prototypes(root, files):
    """Prototypes in a .c file of functions another file defines."""
    owner, decls = {}, {}
    for p in files:
        c, _ = code_of(os.path.join(root, p))
        for ty, n in DEF.findall(c):
            if n not in KEYWORDS and not re.search(r"\bstatic\b", ty):
                owner.setdefault(n, set()).add(p)
        decls[p] = [(ty, n) for ty, n in DECL.findall(c) if n not in KEYWORDS]
    out = []
    for p in files:
        for ty, n in decls[p]:
            if re.search(r"\b(static|typedef|return)\b", ty):
                continue
            others = owner.get(n, set()) - {p}
            if others and p not in owner.get(n, set()):
                out.append("%s declares %s() itself (defined in %s): include its header"
                           % (p, n, ", ".join(sorted(others))))
    return out


def check_libs(root):
    fs_headers = set()
    for dirpath, _, names in os.walk(os.path.join(root, "fs")):
        for n in names:
            if n.endswith(".h"):
                fs_headers.add(n)
    ok = True
    for lib in LIBS:
        own = set()
        paths = []
        for dirpath, _, names in os.walk(os.path.join(root, lib)):
            for n in names:
                if n.endswith((".c", ".h")):
                    own.add(n)
                    paths.append(os.path.join(dirpath, n))
        for p in sorted(paths):
            with open(p, encoding="utf-8", errors="replace") as f:
                raw = f.read()
            for h in INCLUDE.findall(raw):
                name = os.path.basename(h)
                if "fs/" in h or (name in fs_headers and name not in own):
                    print("FAIL: %s includes \"%s\" from fs/" % (os.path.relpath(p, root), h))
                    ok = False
    if ok:
        print("ok: %s include nothing of fs/" % " ".join(l + "/" for l in LIBS))
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default=os.path.dirname(here))
    ap.add_argument("--enforce", action="append", help="folder whose file cycles fail")
    ap.add_argument("--report", action="append", help="folder whose file cycles are printed")
    a = ap.parse_args()
    enforce = a.enforce if a.enforce is not None else ["fs", "fs/read"]
    report = a.report if a.report is not None else []
    ok = check_libs(a.root)
    for rel in enforce:
        ok = check_scope(a.root, rel, True) and ok
    for rel in report:
        check_scope(a.root, rel, False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
