#!/usr/bin/env python3
"""A copy of tract-onnx that registers only the ONNX operators some models use: the size lever "register only the
operators our bundles need" (issue 26), measured without forking tract. tract-onnx registers all ~180 operators and
keeps its per-operator modules private, so a downstream crate cannot choose; this copy shows what a selective
registration upstream would save (BENCHMARKS.md, "Library size per ABI").

    bench/reduced_ops.py OUT_DIR MODEL.onnx... [--also OP,OP]     (OUT_DIR outside this workspace, e.g. under /tmp)
    SNAKEID_TRACT_ONNX=OUT_DIR bench/lib_sizes.sh aarch64-linux-android

Every `reg.insert("Op", builder);` for an operator none of the models uses (nor --also names) is deleted; the
builders left unreferenced are dropped by the linker with the operators only they reach. A model needing a deleted
operator fails to load with tract's "unimplemented operator" error naming it.
"""
import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import onnx

INSERT = re.compile(r'reg\.insert\(\s*"([A-Za-z0-9_]+)"')


def tract_onnx_source() -> Path:
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"],
                                     check=True, capture_output=True, text=True).stdout)
    return next(Path(p["manifest_path"]).parent for p in meta["packages"] if p["name"] == "tract-onnx")


def call_end(text: str, start: int) -> int:
    """Index just past the call whose `(` follows `start`, and its `;` if it has one (a block's last expression
    has none)."""
    depth, i = 0, text.index("(", start)
    while True:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
        if depth == 0:
            rest = text[i:].lstrip(" ")
            return i + (len(text[i:]) - len(rest)) + 1 if rest.startswith(";") else i


def attributes_start(text: str, start: int) -> int:
    """Start of the statement at `start` with the attribute lines (`#[cfg(...)]`) directly above it."""
    line = text.rfind("\n", 0, start) + 1
    while line > 0:
        above = text.rfind("\n", 0, line - 1) + 1
        if not text[above:line - 1].strip().startswith("#["):
            break
        line = above
    return line if text[line:start].strip() == "" or text[line:start].lstrip().startswith("#[") else start


def reduce(source: Path, keep: set) -> tuple:
    kept, dropped = set(), set()
    for path in source.rglob("*.rs"):
        text = path.read_text()
        out, at = [], 0
        for m in INSERT.finditer(text):
            if m.start() < at:
                continue
            (kept if m.group(1) in keep else dropped).add(m.group(1))
            if m.group(1) not in keep:
                out.append(text[at:attributes_start(text, m.start())])
                at = call_end(text, m.start())
        path.write_text("".join(out) + text[at:])
    return kept, dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--also", default="", help="operators to keep besides the models' own, comma-separated")
    args = ap.parse_args()
    keep = {n.op_type for m in args.models for n in onnx.load(m).graph.node} | {"Constant", "Identity"}
    keep |= {op for op in args.also.split(",") if op}
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.copytree(tract_onnx_source(), args.out)
    kept, dropped = reduce(args.out / "src", keep)
    print(f"{args.out}: {len(kept)} operators registered ({', '.join(sorted(kept))}), {len(dropped)} left out")


if __name__ == "__main__":
    main()
