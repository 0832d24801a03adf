"""``l2o compare --suite heldout`` and ``scripts/heldout_suite.py``: run and report the suite.

    l2o compare --suite heldout --optimizers mlp-image,runs/mlp/theta --guard --out runs/suite

Baseline names among the optimizers are skipped (the suite always tunes and runs Adam,
Lion and Lookahead); every other entry is a shipped learned optimizer or a theta file.
"""

from __future__ import annotations

from pathlib import Path

import jax

from l2o.app.errors import UsageError

SUITES: tuple[str, ...] = ("heldout",)


def resolve_learned(entries: list[str]) -> dict:
    """Row name -> ``num_steps -> optax transform`` for the learned entries.

    Raises `l2o.app.errors.UsageError` with one line for an unknown name or an unreadable file.
    """
    import l2o
    from baselines import registry
    from baselines.cli import resolve_optimizer, unique_labels

    learned = [e for e in entries if e not in registry.names()]
    try:
        return {label: resolve_optimizer(e) for label, e in zip(unique_labels(learned), learned)}
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(f"{err}") from None


def parse_problems(text: str | None, problem_set=None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]`` checked against ``problem_set`` (default
    ``tasks.heldout``; None: the whole suite)."""
    from tasks import heldout

    heldout = heldout if problem_set is None else problem_set
    if not text:
        return None
    problems = [p.strip() for p in text.split(",") if p.strip()]
    try:
        for name in problems:
            heldout.get(name)
    except KeyError as err:
        raise UsageError(f"{err.args[0]}") from None
    if not problems:
        raise UsageError(f"no problem in {text!r}; choose from "
                         f"{heldout.names()}.")
    return problems


def run_and_report(entries: list[str], problems: str | None, steps: int, num_seeds: int,
                   guard: bool, seed: int, out: str | Path):
    """Resolve, run the suite, write the report into ``out``, print the summary; returns
    the :class:`baselines.suite.SuiteResults`."""
    from baselines import suite, suite_report

    for flag, value in (("steps", steps), ("seeds", num_seeds)):
        if value < 1:
            raise UsageError(f"--{flag} must be >= 1, got {value}.")
    chosen = parse_problems(problems)
    results = suite.run_suite(resolve_learned(entries), chosen, steps=steps,
                              num_seeds=num_seeds, guard=guard, key=jax.random.PRNGKey(seed))
    paths = suite_report.write_report(results, out)
    print(f"wrote {paths['markdown']} and {paths['json']} ({results.device}, "
          f"{results.seconds:.0f} s)")
    for row, a in results.aggregates.items():
        s = a["speedup"]
        print(f"{row:24s} speedup median {s['median']:.3g}x  IQM {s['iqm']:.3g}x  "
              f"wins {a['win_rate']:.2f}  loss ratio max {a['loss_ratio_max']:.3g}  "
              f"diverged {a['divergences']}/{a['num_runs']}")
    return results
