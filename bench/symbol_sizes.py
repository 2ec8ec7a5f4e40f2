#!/usr/bin/env python3
"""Where a linked library's bytes go, by crate: sums the sizes of its defined symbols (from `llvm-nm-14`, demangled)
under the crate each belongs to, and prints them beside the stripped file's size (used by bench/lib_sizes.sh).

A generic function is counted under the first crate in its name that is not Rust's own (core, alloc, std), so
`core::ptr::drop_in_place<tract_core::model::Graph>` is tract-core's and `<rayon::...<tract_linalg::...>>` rayon's.
Symbols with no Rust path (tract-linalg's assembly kernels, C) are "(assembly/C)". What no symbol covers (headers,
tables of symbols and relocations, unwind tables) is the rest.

    bench/symbol_sizes.py TARGET LINKED_LIBRARY STRIPPED_LIBRARY [TOP]
"""
import os
import re
import subprocess
import sys
from collections import Counter

RUST_OWN = {"core", "alloc", "std", "hashbrown", "compiler_builtins"}
# A path's first segment: at the start of the name or after `<`, a space, `&`, `*`, `(`, `,` or `[`.
ROOT = re.compile(r"(?:^|[<\s&*(,\[])([A-Za-z_][A-Za-z0-9_]*)::")


# What llvm-nm's demangler leaves of Rust's legacy mangling inside a path.
ESCAPES = {"$LT$": "<", "$GT$": ">", "$u20$": " ", "$RF$": "&", "$BP$": "*", "$C$": ",", "$u7b$": "{", "$u7d$": "}",
           "$u27$": "'", "$u5b$": "[", "$u5d$": "]", "$u3b$": ";", "$u2b$": "+", "$u22$": '"', "..": "::"}


def rust_name(name: str) -> str:
    for escape, text in ESCAPES.items():
        name = name.replace(escape, text)
    return name.lstrip("_")


def crate_of(name: str) -> str:
    name = rust_name(name)
    crates = [c for c in ROOT.findall(name) if c not in ("impl", "dyn")]
    if not crates:
        return "(assembly/C)"
    outside = [c for c in crates if c not in RUST_OWN]
    return (outside or crates)[0].replace("_", "-")


def symbol_sizes(path: str) -> Counter:
    listing = subprocess.run(
        ["llvm-nm-14", "--print-size", "--numeric-sort", "--demangle", "--defined-only", path],
        check=True, capture_output=True, text=True,
    ).stdout
    rows = []
    for line in listing.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2].lower() in "tdrbvw":
            rows.append((int(parts[0], 16), int(parts[1], 16), parts[2].lower(), parts[3]))
    if rows and not any(size for _, size, _, _ in rows):
        # Mach-O records no symbol sizes: a symbol runs to the next one of its kind.
        rows = [(a, (rows[i + 1][0] - a) if i + 1 < len(rows) and rows[i + 1][2] == kind else 0, kind, name)
                for i, (a, _, kind, name) in enumerate(rows)]
    sizes = Counter()
    seen = set()
    for address, size, _, name in rows:
        if (address, size) in seen:  # aliases of one body (identical code folded) count once
            continue
        seen.add((address, size))
        sizes[crate_of(name)] += size
    return sizes


def main() -> None:
    target, linked, stripped = sys.argv[1:4]
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    mb = 1e6
    total = os.path.getsize(stripped)
    sizes = symbol_sizes(linked)
    named = sum(sizes.values())
    print(f"{target}: {total / mb:.2f} MB stripped ({named / mb:.2f} MB in symbols)")
    for crate, size in sizes.most_common(top):
        print(f"  {crate:<24} {size / mb:6.2f} MB")
    print(f"  {'(others)':<24} {sum(s for _, s in sizes.most_common()[top:]) / mb:6.2f} MB")
    print(f"  {'(not in symbols)':<24} {max(total - named, 0) / mb:6.2f} MB")
    sections = sections_of(stripped)
    unwind = sum(v for k, v in sections.items()
                 if k in (".eh_frame", ".unwind_info", ".ARM.exidx", ".ARM.extab") or k.startswith(".gcc_except"))
    print(f"  sections: code {sections.get('.text', 0) / mb:.2f} MB, unwind tables {unwind / mb:.2f} MB, "
          f"relocations {sum(v for k, v in sections.items() if k.startswith('.rel')) / mb:.2f} MB")


def sections_of(path: str) -> dict:
    listing = subprocess.run(["llvm-size-14", "-A", path], check=True, capture_output=True, text=True).stdout
    sizes = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(("_", ".")) and parts[1].isdigit():
            sizes[parts[0].replace("__TEXT,", "").replace("__", ".")] = int(parts[1])
    return sizes


if __name__ == "__main__":
    main()
