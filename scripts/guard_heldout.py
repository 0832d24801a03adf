"""The loss guard on the held-out suite: ``python scripts/guard_heldout.py [OPTIMIZERS ...]``.

For every problem of ``tasks.heldout``: Adam tuned per problem exactly as in
``baselines.suite`` (same grid, seeds and selection), each learned optimizer alone, and
each guarded by that tuned Adam with the paired runs, for every guard setting given
(one compiled call per optimizer and problem, the settings as a vmapped grid)::

    python scripts/guard_heldout.py --out runs/guard_heldout
    python scripts/guard_heldout.py mlp-image --problems diabetes-tanh \
        --settings 0.9:0.0025:0.1,0.9:0.0025:0.99
    python scripts/guard_heldout.py --families mlp-digits,quadratic --steps 200
    python scripts/guard_heldout.py mlp-generalist-log --no-alone-run   # two runs only

Prints, per problem and row, the final full-train loss (mean over seeds) and its ratio to
tuned Adam's and to the learned optimizer alone's; writes ``guard_heldout.json`` and the
tables of `markdown` (``guard_heldout.md``) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import numpy as np


def parse_args(argv=None):
    from baselines import suite

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("optimizers", nargs="*", help="learned optimizers (default: all shipped)")
    parser.add_argument("--problems", default=None, help="comma-separated (default: all)")
    parser.add_argument("--families", default=None,
                        help="comma-separated registry task families to run instead of the "
                        "held-out problems (one task each), e.g. to choose --settings off the suite")
    parser.add_argument("--settings", default="0.97:0.0025:0.1",
                        help="comma-separated smoothing:switch_gap:reset_gap (default %(default)s)")
    parser.add_argument("--alone-run", action=argparse.BooleanOptionalAction, default=None,
                        help="run the learned optimizer alone as a third run (default: "
                        "l2o.guard's default)")
    parser.add_argument("--steps", type=int, default=suite.DEFAULT_STEPS)
    parser.add_argument("--seeds", type=int, default=suite.DEFAULT_SEEDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/guard_heldout")
    return parser.parse_args(argv)


def final_loss(result) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds of the final full-train loss (non-finite seeds left out), and the
    number of diverged seeds, each with the grid axis if there is one."""
    final = result.eval_train_loss[..., 0, :, -1]
    with np.errstate(all="ignore"):
        return np.nanmean(np.where(np.isfinite(final), final, np.nan), -1), \
            result.diverged[..., 0, :].sum(-1)


def markdown(out: dict) -> str:
    """Per setting: a table of final train loss per problem (tuned Adam, each optimizer alone
    and guarded) with the guarded row's ratio to tuned Adam and, where the optimizer alone
    ended below Adam, to the optimizer alone; then the worst ratios per optimizer."""
    problems = list(out["problems"])
    names = [n for n in out["problems"][problems[0]] if n != "adam" and "+guard" not in n]
    lines = []
    for i, s in enumerate(out["settings"]):
        lines += [f"### smoothing {s['smoothing']:g}, switch_gap {s['switch_gap']:g}, "
                  f"reset_gap {s['reset_gap']:g}", "",
                  "| problem | tuned Adam | " + " | ".join(
                      f"`{n}` alone | +guard (÷Adam, ÷alone)" for n in names) + " |",
                  "|---|---|" + "---|---|" * len(names)]
        worst = {n: [0.0, 0.0] for n in names}
        for problem in problems:
            rows = out["problems"][problem]
            adam = rows["adam"]["final_train_loss"]
            cells = [problem, f"{adam:.4g}"]
            for n in names:
                alone, g = rows[n], rows[f"{n}+guard {i}"]
                versus = f"{g['vs_learned']:.3f}" if alone["final_train_loss"] < adam else "-"
                worst[n][0] = max(worst[n][0], g["vs_adam"])
                if alone["final_train_loss"] < adam:
                    worst[n][1] = max(worst[n][1], g["vs_learned"])
                diverged = f" ({alone['diverged']} div.)" if alone["diverged"] else ""
                cells += [f"{alone['final_train_loss']:.4g}{diverged}",
                          f"{g['final_train_loss']:.4g} ({g['vs_adam']:.3f}, {versus})"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Worst ratio to tuned Adam / to the optimizer alone where it beat Adam: "
                  + ", ".join(f"`{n}` {w[0]:.3f} / " + (f"{w[1]:.3f}" if w[1] else "-")
                              for n, w in worst.items()) + ".",
                  ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    import l2o
    from baselines.evaluate import evaluate_grid
    from baselines.suite import REFERENCE, SUITE_GRIDS
    from baselines.registry import get as get_baseline
    from baselines.suite_cli import parse_problems, resolve_learned
    from tasks import heldout

    args = parse_args(argv)
    learned = resolve_learned(args.optimizers or l2o.list_pretrained())
    if args.families:
        import tasks

        problems = [f.strip() for f in args.families.split(",") if f.strip()]
        make_family = tasks.registry.get
    else:
        problems, make_family = parse_problems(args.problems) or heldout.names(), heldout.family
    settings = [dict(zip(("smoothing", "switch_gap", "reset_gap"), map(float, s.split(":"))))
                for s in args.settings.split(",")]
    for s in settings:
        l2o.guard.check_settings(**s)
    alone_run = l2o.guard.DEFAULT_ALONE_RUN if args.alone_run is None else args.alone_run
    spec = get_baseline(REFERENCE).with_grid(**SUITE_GRIDS[REFERENCE])
    key = jax.random.PRNGKey(args.seed)
    start, out = time.perf_counter(), {"settings": settings, "device": str(jax.devices()[0]),
                                       "steps": args.steps, "seeds": args.seeds, "alone_run": alone_run,
                                       "problems": {}}
    for problem in problems:
        family = make_family(problem)

        def run(make, grid=None, stats=None, eval_params=None):
            return evaluate_grid(make, grid, family, args.steps, args.seeds, 1, key,
                                 eval_params, 10, stats)

        points = spec.grid_points()
        adam = run(spec.make, points, eval_params=spec.eval_params)
        finals, diverged = final_loss(adam)
        scores = np.where(diverged > 0, np.inf, finals)
        best = int(np.argmin(scores))
        fallback = spec.make(**points[best])
        rows = {"adam": {"hparams": points[best], "final_train_loss": float(finals[best])}}
        for name, factory in learned.items():
            alone, alone_diverged = final_loss(run(lambda f=factory: f(args.steps)))
            rows[name] = {"final_train_loss": float(alone), "diverged": int(alone_diverged)}
            grid = [dict(s) for s in settings]

            def make(f=factory, **s):
                return l2o.loss_guarded(f(args.steps), fallback, alone_run=alone_run, **s)

            guarded = run(make, grid, l2o.guard_stats)
            g_final, g_diverged = final_loss(guarded)
            for i, s in enumerate(settings):
                stats = {k: float(np.mean(v[i])) for k, v in guarded.final_stats.items()}
                rows[f"{name}+guard {i}"] = {
                    "settings": s, "final_train_loss": float(g_final[i]),
                    "diverged": int(g_diverged[i]), "learned_fraction": stats["learned_fraction"],
                    "num_resets": stats["num_resets"], "ends_on_learned": stats["used_learned"],
                    "alone_fraction": stats["alone_fraction"],
                    "ends_on_alone": float(np.mean(guarded.final_stats["following"][i] == 2)),
                    "vs_adam": float(g_final[i] / finals[best]),
                    "vs_learned": float(g_final[i] / alone)}
                r = rows[f"{name}+guard {i}"]
                print(f"{problem:20s} {name:16s} set {i}: guard {r['final_train_loss']:.4g} "
                      f"adam {finals[best]:.4g} alone {alone:.4g}  vs adam {r['vs_adam']:.3f} "
                      f"vs alone {r['vs_learned']:.3f}  learned {100 * r['learned_fraction']:.0f}% "
                      f"resets {r['num_resets']:.1f} end-on-learned {r['ends_on_learned']:.2f} "
                      f"end-on-alone {r['ends_on_alone']:.2f}",
                      flush=True)
        out["problems"][problem] = rows
        Path(args.out).mkdir(parents=True, exist_ok=True)
        out["seconds"] = time.perf_counter() - start
        (Path(args.out) / "guard_heldout.json").write_text(json.dumps(out, indent=1))
        (Path(args.out) / "guard_heldout.md").write_text(markdown(out))
    print(f"done in {time.perf_counter() - start:.0f} s on {out['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
