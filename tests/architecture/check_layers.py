#!/usr/bin/env python3
"""Checks the core's layering (README, "Architecture"): no module imports another that imports it back, directly or
around a longer circle; `kernels/` never names tract-onnx or tract-core; every Rust file opens with a `//!` line;
every `unsafe { … }` block has a `SAFETY:` comment on its line or the four lines above it (issue 39).

Modules are the files of core/src; an edge is a `crate::…` or `super::…` path outside comments and `#[cfg(test)]`
code that names another file's module (a parent declaring its children with `mod` is not an edge). Usage: check_layers.py [CORE_SRC]
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2] / "core/src")
files = sorted(src.rglob("*.rs"))


def module_of(path):
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


modules = {module_of(f): f for f in files}


def without_tests(text):
    """The file without its `#[cfg(test)]` items (a test module may use what it tests from anywhere)."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].strip().startswith("#[cfg(test)]") or lines[i].strip().startswith("#[cfg(all(test"):
            i += 1
            if i < len(lines) and lines[i].rstrip().endswith(";"):
                i += 1
                continue
            depth = 0
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
                if depth <= 0 and "}" in lines[i - 1]:
                    break
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def resolve(here, path):
    """The longest module named by `path` (a list of segments, from `here`'s point of view)."""
    if path[0] == "crate":
        base, rest = (), path[1:]
    else:
        base, rest = here, list(path)
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
        if rest and rest[0] == "self":
            rest = rest[1:]
    best = None
    for k in range(len(rest) + 1):
        if base + tuple(rest[:k]) in modules:
            best = base + tuple(rest[:k])
    return best


edges = {m: set() for m in modules}
problems = []
for m, f in modules.items():
    text = f.read_text()
    if not text.startswith("//!"):
        problems.append(f"{f.relative_to(src)}: does not open with a `//!` line")
    # Comments (doc links included) are not imports.
    body = re.sub(r"//.*", "", without_tests(text))
    for match in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", body):
        target = resolve(m, match.group(1).split("::"))
        # A module naming its own ancestors' items by path is still an edge, unless the ancestor is lib.rs (the
        # crate root) or the module itself.
        if target is not None and target != m and target != ():
            edges[m].add(target)
    # `child::…` in a mod.rs or lib.rs (a path relative to the module itself).
    if f.name in ("mod.rs", "lib.rs"):
        for match in re.finditer(r"(?<![:\w])(\w+)::", body):
            if m + (match.group(1),) in modules:
                edges[m].add(m + (match.group(1),))
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.search(r"\bunsafe\s*\{", line.split("//")[0]) and not any("SAFETY" in l for l in lines[max(0, i - 4):i + 1]):
            problems.append(f"{f.relative_to(src)}:{i + 1}: an unsafe block without a SAFETY line")
    if m[:1] == ("kernels",) and re.search(r"tract_(onnx|core)", text):
        problems.append(f"{f.relative_to(src)}: kernels/ names tract-onnx or tract-core")

# Parents declare their children (`mod x;`), so a child's edge to its parent is only a circle if the parent also
# *uses* the child; both directions are edges here, so any circle found is a real one.
state, stack = {}, []


def visit(m):
    state[m] = 1
    stack.append(m)
    for n in sorted(edges[m]):
        if state.get(n) == 1:
            cycle = stack[stack.index(n):] + [n]
            problems.append("import circle: " + " -> ".join("::".join(c) or "lib" for c in cycle))
        elif n not in state:
            visit(n)
    stack.pop()
    state[m] = 2


for m in sorted(modules):
    if m not in state:
        visit(m)

for p in problems:
    print(p)
print(f"{len(modules)} modules, {sum(len(e) for e in edges.values())} edges: " + ("FAILED" if problems else "no circles, kernels free of tract, every file documented, every unsafe block justified"))
sys.exit(1 if problems else 0)
