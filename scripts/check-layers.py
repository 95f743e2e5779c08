#!/usr/bin/env python3
"""Checks the layering of the Rust code: no module imports one that imports it back,
directly or through others (the module import graph of each crate has no cycle), and
the protocol crate depends on no async runtime, QUIC stack or libc.

A module "imports" another when its code (comments aside) names it by a path: in a `use`
or inline (`crate::a::b::Item`, `super::x::Item`, `self::y`). A path is resolved to the
longest module it names; an item re-exported by a parent (`pub use`) counts as an import
of that parent. `mod x;` declarations are containment, not imports.
Usage: scripts/check-layers.py [--graph]   (exit 1 on a cycle)
"""
import os, re, sys, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = {
    "wtdatagram-proto": "crates/proto/src",
    "wtdatagram": "src",
    "wtdatagram-ffi": "crates/ffi/src",
    "wtd": "crates/cli/src",
}

def modules(src):
    """module path tuple -> file"""
    mods = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, src)):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), os.path.join(ROOT, src))
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods[tuple(parts)] = os.path.join(dirpath, f)
    return mods

def strip_comments(code):
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    out = []
    for line in code.split("\n"):
        # drop // comments outside string literals (good enough: our strings rarely hold //)
        i = line.find("//")
        if i >= 0 and line[:i].count('"') % 2 == 0:
            line = line[:i]
        out.append(line)
    return "\n".join(out)

def strip_tests(code):
    # unit-test modules may import whatever they test
    m = re.search(r"#\[cfg\(test\)\]\s*mod \w+ \{", code)
    return code[: m.start()] if m else code

def resolve(cur, path, mods):
    """cur: module tuple of the file; path: list of segments starting with crate/super/self."""
    if path[0] == "crate":
        base, rest = (), path[1:]
    elif path[0] == "self":
        base, rest = cur, path[1:]
    else:
        base, rest = cur, path
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    best = base
    for i in range(len(rest)):
        cand = base + tuple(rest[: i + 1])
        if cand in mods:
            best = cand
        else:
            break
    return best

def use_paths(code, children):
    """All crate/super/self paths in the code, and paths through a child module
    (`use child::Item`, `child::item()`), as segment lists (use trees expanded)."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]*);", code, flags=re.S):
        tree = re.sub(r"\s+", "", m.group(1))
        for p in expand(tree):
            if p and p[0] in children:
                p = ["self"] + p
            paths.append(p)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", code):
        paths.append(m.group(1).split("::"))
    for m in re.finditer(r"(?<![\w:])(\w+)::\w+", code):
        if m.group(1) in children:
            paths.append(["self", m.group(1)])
    return paths

def expand(tree):
    i = tree.find("{")
    if i < 0:
        return [[p for p in tree.split("::") if p and p != "*"]]
    prefix = tree[:i].rstrip(":")
    body = tree[i + 1 : tree.rfind("}")]
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur); cur = ""; continue
        depth += ch == "{"; depth -= ch == "}"
        cur += ch
    if cur:
        items.append(cur)
    out = []
    for it in items:
        it = it.split(" as ")[0]
        if it == "self":
            out.append(prefix.split("::"))
        else:
            out.extend(expand(prefix + "::" + it))
    return out

def graph(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        code = strip_tests(strip_comments(open(f).read()))
        children = {k[len(m)] for k in mods if len(k) == len(m) + 1 and k[: len(m)] == m}
        for p in use_paths(code, children):
            if not p or p[0] not in ("crate", "super", "self"):
                continue
            t = resolve(m, p, mods)
            if t != m and t in mods:
                edges[m].add(t)
    return edges

def cycles(edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)
    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out

def name(m):
    return "::".join(m) or "(root)"

failed = False
for crate, src in CRATES.items():
    edges = graph(src)
    for comp in cycles(edges):
        failed = True
        print(f"{crate}: import cycle among " + ", ".join(sorted(name(m) for m in comp)))
    if "--graph" in sys.argv:
        for m in sorted(edges):
            print(f"{crate} {name(m)} -> {', '.join(sorted(name(t) for t in edges[m])) or '-'}")

tree = subprocess.run(["cargo", "tree", "-p", "wtdatagram-proto", "-e", "normal", "--prefix", "none"],
                      cwd=ROOT, capture_output=True, text=True)
deps = {l.split()[0] for l in tree.stdout.split("\n") if l.strip()}
bad = deps & {"tokio", "quinn", "quinn-proto", "libc", "socket2", "mio"}
if tree.returncode != 0 or bad:
    failed = True
    print(f"wtdatagram-proto depends on {sorted(bad) or tree.stderr.strip()}")
else:
    print(f"wtdatagram-proto depends on: {', '.join(sorted(deps - {'wtdatagram-proto'}))}")

lib = subprocess.run(["cargo", "tree", "-p", "wtdatagram", "-e", "normal", "--prefix", "none"],
                     cwd=ROOT, capture_output=True, text=True)
if "wtdatagram-ffi" in lib.stdout or lib.returncode != 0:
    failed = True
    print("the Rust API crate depends on the C ABI crate")

if failed:
    sys.exit(1)
print("layers: no import cycle in any crate; the protocol crate has no async runtime, QUIC\n"
      "or libc; the Rust API crate builds without the C ABI crate")
