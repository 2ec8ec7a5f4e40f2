#!/usr/bin/env python3
"""Checks that the commands of CI and the README share one build of every dependency (tract above all) per target.

Cargo builds a crate again whenever the features it resolves differ between commands, and it resolves them over the
packages each command names: the CLI's clap and wgpu and the FFI's uniffi turn on different features of syn, serde,
smallvec, hashbrown, rustix and getrandom, all of them under tract. `workspace-hack/` lifts every command to the same
features. This check resolves each command with `cargo tree` (no compiling, a second or two) and fails, naming the
crate and its two feature sets, when a dependency shared by two commands resolves differently, so a new dependency
cannot bring the second tract build back unnoticed. Usage: check_one_build.py
"""
import collections
import pathlib
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parents[2]
# The commands whose builds must share their dependencies (tests/test_build.sh's two groups; the README's commands;
# maturin's build of the wheel is the bindings command's).
x86, arm = "x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"
arm_features = ["--no-default-features", "--features"]
commands = {
    "tests (core, CLI, integration)": (x86, ["-e", "normal,build,dev", "-p", "snakeid", "-p", "snakeid-cli", "-p", "snakeid-tests"]),
    "FFI tests": (x86, ["-e", "normal,build,dev", "-p", "snakeid-ffi"]),
    "README identify (cargo run -p snakeid-cli)": (x86, ["-e", "normal,build", "-p", "snakeid-cli"]),
    "README bindings, wheel (cargo build -p snakeid-ffi)": (x86, ["-e", "normal,build", "-p", "snakeid-ffi"]),
    # tests/arm/env.sh's packages and features, and the aarch64 wheel's (tests/bindings/wheel_aarch64.sh).
    "aarch64 tests": (arm, ["-e", "normal,build,dev", "-p", "snakeid", "-p", "snakeid-tests", "-p", "snakeid-cli", "-p",
                            "snakeid-ffi", *arm_features,
                            "snakeid/embedded-default,snakeid-cli/embedded-default,snakeid-ffi/embedded-default"]),
    "aarch64 wheel": (arm, ["-e", "normal,build", "-p", "snakeid-ffi", *arm_features, "embedded-default,threads"]),
}
# The scripts must still build what is resolved here.
for script, text in (("tests/arm/env.sh", commands["aarch64 tests"][1][-1]),
                     ("tests/bindings/wheel_aarch64.sh", "--features " + commands["aarch64 wheel"][1][-1])):
    if text not in (root / script).read_text():
        sys.exit(f"{script} no longer builds with {text!r}: update this check's commands")
# Ours (they compile again anyway, in seconds) and `image` (the integration tests write JPEGs; nothing depends on it).
exempt = {"snakeid", "snakeid-cli", "snakeid-ffi", "snakeid-tests", "snakeid-workspace-hack", "image"}


def resolve(target, args):
    """Package -> the set of feature lists it is built with (a proc-macro's dependency can be built twice)."""
    out = subprocess.run(["cargo", "tree", "--locked", "--target", target, "--prefix", "none",
                          "-f", "{p}|{f}", *args], cwd=root, check=True, capture_output=True, text=True).stdout
    seen = collections.defaultdict(set)
    for line in filter(None, out.splitlines()):
        package, features = line.replace(" (*)", "").split("|")
        name, version = package.split()[:2]
        if name not in exempt:
            seen[f"{name} {version}"].add(features)
    return seen


resolved = {what: resolve(*how) for what, how in commands.items()}
problems = []
names = list(resolved)
for i, a in enumerate(names):
    for b in names[i + 1:]:
        if commands[a][0] != commands[b][0]:
            continue
        for package in sorted(resolved[a].keys() & resolved[b].keys()):
            if resolved[a][package] != resolved[b][package]:
                problems.append(f"{package}: {a}: {sorted(resolved[a][package])}; {b}: {sorted(resolved[b][package])}")
if problems:
    print("dependencies built twice (their features differ between commands; add them to workspace-hack/Cargo.toml):")
    print("\n".join(problems))
    sys.exit(1)
print(f"one build per target: the dependencies resolve alike in {len(commands)} commands")
