"""Where an answer may differ between arithmetics (x86, ARM, wasm, GPU): the lines of the default bundle's gate and
warning, and whether an answer lies within EDGE logits of one. Shared by tests/arm/compare_answers.py and
tests/web/check_web.py, which compare answers on real snake photos as well as on photos without snakes.
"""
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SNAKES = ROOT.parent / "shared/data/snakes/ph14/val"
# The default bundle's manifest: snake at P(snake) >= 0.7 (snake_detected at 0.5); none under P(snake) +
# P(look-alikes) 0.1; the warning at a venomous species' 0.1; uncertain under a top species' 0.6.
LINES = {"snake": 0.7, "detected": 0.5, "none": 0.1, "venom": 0.1, "uncertain": 0.6}
# An answer this close to a line (in logits) may cross it under other arithmetic: onnxruntime's own two evaluations
# of the model differ by 0.11 in P(snake) near 0.5 (0.45 logits).
EDGE = 0.75


def logit(p):
    p = min(max(p, 1e-12), 1 - 1e-7)
    return math.log(p) - math.log1p(-p)


def at_edge(a, lines=tuple(LINES)):
    """Whether answer `a` (the CLI's JSON) is within EDGE logits of one of `lines` (default: all of the gate's, the
    warning's and uncertainty's)."""
    values = {
        "snake": a["snake_probability"],
        "detected": a["snake_probability"],
        "none": a["snake_probability"] + a["lookalike_probability"],
        "venom": max([p["probability"] for p in a["predictions"] if p["venomous"]], default=0.0),
        "uncertain": a["predictions"][0]["probability"],
    }
    return any(abs(logit(values[k]) - logit(LINES[k])) < EDGE for k in lines)


def real_snakes(per_species):
    """The first `per_species` photos of each species of ph14's val split; fails when ../shared is missing."""
    if not SNAKES.is_dir():
        sys.exit(f"error: {SNAKES} is missing: the real photos live in ../shared/data beside the project")
    return [p for species in sorted(SNAKES.iterdir()) for p in sorted(species.iterdir())[:per_species]]
