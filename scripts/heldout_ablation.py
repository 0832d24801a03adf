"""Held-out suite rows for variants of a recipe's optimizer config, at their initial
meta-parameters: ``python scripts/heldout_ablation.py RECIPE [VARIANT ...]``.

Each VARIANT is ``label:key=value[,key=value...]`` (values in JSON, e.g.
``no-norm:normalize_update=false`` or ``fan-in-none:fan_in_scaling="none"``) and overrides
the recipe's ``lopt_config``; the recipe's own config is always the row ``base``.
``--training`` runs the same protocol on ``tasks.training_problems`` (the meta-training
distribution) instead: choose options there, then measure them once on the suite. Every
row starts from ``init_meta_params(fold_in(PRNGKey(seed), 1))``, the point meta-training
of that recipe starts from, so the table measures what each option gives before any
meta-training. ``--trained LABEL=FILE`` adds meta-trained optimizers (files written by
``l2o.save``) as further rows. Tuned Adam is the only baseline (``adam@suite`` comes with
it); no guard. Writes the suite report (``report.md``, ``results.json``, plots) into
``--out`` and prints the summary::

    python scripts/heldout_ablation.py mlp-generalist-log \\
        no-norm:normalize_update=false fan-in-none:fan_in_scaling=\\"none\\" \\
        --trained trained=runs/generalist-log-weights/mlp-generalist-log.json --out runs/ablation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECIPES = Path(__file__).resolve().parent / "pretrain"


def _split_pairs(body: str) -> list[str]:
    """Split ``k=v,k2=[1, 2]`` at the commas outside brackets and quotes."""
    items, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(body):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            items.append(body[start:i])
            start = i + 1
    return [item for item in [*items, body[start:]] if item.strip()]


def parse_variant(text: str) -> tuple[str, dict]:
    """``"label:k=v,k2=v2"`` -> ``("label", {"k": v, "k2": v2})`` with JSON values."""
    label, sep, body = text.partition(":")
    if not sep or not label:
        raise SystemExit(f"variant {text!r}: expected LABEL:KEY=VALUE[,KEY=VALUE...].")
    overrides = {}
    for item in _split_pairs(body):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"variant {text!r}: {item!r} is not KEY=VALUE.")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"variant {text!r}: value of {key!r} is not JSON: {value!r} "
                             "(strings need quotes, e.g. fan_in_scaling=\"none\").") from None
    return label, overrides


def variant_rows(recipe: dict, variants: list[tuple[str, dict]], seed: int) -> dict:
    """Row label -> ``num_steps -> optax transform`` at the variants' initial theta."""
    import jax

    import l2o

    rows = {}
    for label, overrides in [("base", {}), *variants]:
        try:
            lopt = l2o.registry.get(recipe["lopt"], **{**recipe.get("lopt_config", {}),
                                                      **overrides})
        except (TypeError, ValueError) as err:
            raise SystemExit(f"variant {label!r}: {err}") from None
        theta = lopt.init_meta_params(jax.random.fold_in(jax.random.PRNGKey(seed), 1))
        rows[label] = lambda n, lopt=lopt, theta=theta: lopt.as_optax(theta, num_steps=n)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help=f"a recipe of {RECIPES.name}/ (without .json)")
    parser.add_argument("variants", nargs="*", help="LABEL:KEY=VALUE[,KEY=VALUE...]")
    parser.add_argument("--trained", action="append", default=[], metavar="LABEL=FILE",
                        help="a meta-trained optimizer file as a further row (repeatable)")
    parser.add_argument("--problems", default=None, help="comma-separated problem names")
    parser.add_argument("--training", action="store_true",
                        help="run on tasks.training_problems (the meta-training distribution, "
                        "where options may be chosen) instead of the held-out suite")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/heldout_ablation", help="output directory")
    args = parser.parse_args(argv)

    path = RECIPES / f"{args.recipe}.json"
    if not path.exists():
        names = sorted(p.stem for p in RECIPES.glob("*.json"))
        raise SystemExit(f"no recipe {args.recipe!r}; available: {names}.")
    recipe = json.loads(path.read_text())
    rows = variant_rows(recipe, [parse_variant(v) for v in args.variants],
                        recipe.get("seed", 0))
    import jax

    import l2o
    from baselines import suite, suite_report
    from baselines.suite_cli import UsageError, parse_problems
    from tasks import heldout, training_problems

    for item in args.trained:
        label, eq, file = item.partition("=")
        if not eq or label in rows:
            raise SystemExit(f"--trained {item!r}: expected a new LABEL=FILE.")
        lopt, theta, _ = l2o.load(file)
        rows[label] = lambda n, lopt=lopt, theta=theta: lopt.as_optax(theta, num_steps=n)
    problem_set = training_problems if args.training else heldout
    try:
        problems = parse_problems(args.problems, problem_set)
    except UsageError as err:
        raise SystemExit(str(err)) from None
    results = suite.run_suite(rows, problems, steps=args.steps, num_seeds=args.seeds,
                              baselines=("adam",), key=jax.random.PRNGKey(0),
                              problem_set=problem_set)
    paths = suite_report.write_report(results, args.out)
    print(f"wrote {paths['markdown']} ({results.device}, {results.seconds:.0f} s)")
    for row, a in results.aggregates.items():
        s, u = a["speedup"], a["speedup_vs_untuned"]
        print(f"{row:16s} vs tuned Adam: median {s['median']:.3g}x IQM {s['iqm']:.3g}x "
              f"wins {a['win_rate']:.2f} | vs adam@suite: median {u['median']:.3g}x "
              f"IQM {u['iqm']:.3g}x | loss ratio max {a['loss_ratio_max']:.3g} | "
              f"diverged {a['divergences']}/{a['num_runs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
