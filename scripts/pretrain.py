"""Regenerate a shipped pretrained optimizer: ``python scripts/pretrain.py NAME``.

Reads ``scripts/pretrain/NAME.json`` (a `meta_train.MetaTrainConfig` as a dict plus a
``description``), meta-trains with PES, and writes ``l2o/pretrained/NAME.json`` +
``NAME.msgpack`` with the run's provenance (strategy, horizon, truncation, sigma,
outer steps, tasks, wall time, device, versions). ``--set key=value`` overrides any
config field (e.g. ``--set outer_steps=100`` for a quick check); ``--dest`` writes
elsewhere than the package; ``--resume`` continues the recipe's earlier run in ``--runs``
from its latest checkpoint (bit-identically; e.g. with ``--set outer_steps=...`` to train
further; the provenance's wall time adds up over the resumed sessions).

A recipe may carry ``ship_overrides``: fields of the optimizer's own config that the
shipped file sets differently from meta-training, for what changes how the update is
computed, not theta (e.g. ``{"unroll": null}``: meta-trained in the MLP's matmul form,
which compiles fast on a large mixture, shipped in the automatic form, which steps fast),
or a hand-designed rule outside theta added after meta-training (``{"lr_adapt": 0.1}``,
whose rate was chosen on ``tasks.training_problems``); the provenance records them.

Run directories go to ``--runs`` (default ``runs/pretrain``, or ``DEST/runs`` when
``--dest`` is given, so that a quick check written elsewhere leaves the recipe's real run
directory alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parent / "pretrain"


def available() -> list[str]:
    """Names that have a recipe in ``scripts/pretrain/``."""
    return sorted(p.stem for p in CONFIGS.glob("*.json"))


def ship(name: str, description: str, ship_overrides: dict, config, theta_path: Path,
         dest: str) -> Path:
    """Write ``DEST/NAME.json`` + ``.msgpack`` from a run's kept theta (``theta_path``),
    with the recipe's description, a portable config and ``ship_overrides`` applied to
    the optimizer's config; returns the JSON path."""
    import l2o

    lopt, theta, record = l2o.load(theta_path)
    if ship_overrides:
        lopt = dataclasses.replace(lopt, **ship_overrides)
    portable = {**config.to_dict(), "out_dir": f"runs/pretrain/{name}"}
    meta = {**record["provenance"], "config": portable, "name": name,
            "description": description,
            "recipe": f"python scripts/pretrain.py {name}",
            "final_eval_note": "final_eval: held-out split of the family (other "
                               "architectures), learned optimizer without guard"}
    if ship_overrides:
        meta["ship_overrides"] = ship_overrides
    json_path, _ = l2o.save(Path(dest) / name, lopt, theta, meta)
    return json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help=f"recipes to run: {available()}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a MetaTrainConfig field (repeatable)")
    parser.add_argument("--runs", default=None,
                        help="where run directories go (default runs/pretrain, or "
                             "DEST/runs with --dest)")
    parser.add_argument("--dest", default=str(ROOT / "l2o" / "pretrained"),
                        help="where NAME.json/NAME.msgpack are written (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run of a recipe in --runs")
    parser.add_argument("--resume", action="store_true",
                        help="continue the earlier run of each recipe in --runs")
    parser.add_argument("--ship-only", action="store_true",
                        help="write NAME.json/NAME.msgpack from the finished run in --runs "
                             "without training (e.g. after changing ship_overrides)")
    args = parser.parse_args(argv)
    if sum((args.resume, args.overwrite, args.ship_only)) > 1:
        parser.error("pass at most one of --resume, --overwrite and --ship-only.")

    from meta_train.config import MetaTrainConfig
    from meta_train.run_dir import AlreadyDone, NothingToResume, RunExists
    from meta_train.train import train

    runs = Path(args.runs) if args.runs is not None else (
        Path(args.dest) / "runs" if args.dest != parser.get_default("dest")
        else ROOT / "runs" / "pretrain")

    for name in args.names:
        if name not in available():
            raise SystemExit(f"no recipe {name!r} in {CONFIGS}; available: {available()}.")
    for name in args.names:
        recipe = json.loads((CONFIGS / f"{name}.json").read_text())
        description = recipe.pop("description")
        ship_overrides = recipe.pop("ship_overrides", {})
        config = MetaTrainConfig.from_dict({**recipe, "out_dir": str(runs / name)})
        config = config.with_overrides(args.set)
        print(f"== {name}: {description}")
        if args.resume and not (Path(config.out_dir) / "config.json").is_file():
            raise SystemExit(f"{config.out_dir} has no run of {name} to resume; run without "
                             "--resume to start it (or pass the first run's --dest or --runs).")
        if args.ship_only:
            run_dir = Path(config.out_dir)
            if not (run_dir / "final_eval.json").is_file():
                raise SystemExit(f"{run_dir} holds no finished run of {name}; run it first "
                                 "(without --ship-only).")
            kept = run_dir / ("theta_best" if config.keep == "best" else "theta")
            json_path = ship(name, description, ship_overrides, config, kept, args.dest)
            print(f"wrote {json_path} from the finished run in {run_dir}")
            continue
        try:
            result = train(config, resume=config.out_dir if args.resume else None,
                           overwrite=args.overwrite)
        except RunExists:
            raise SystemExit(f"{config.out_dir} already holds a run of {name}; continue it "
                             "with --resume, replace it with --overwrite, or pass another "
                             "--runs.") from None
        except NothingToResume:
            raise SystemExit(f"{config.out_dir} has no checkpoint of {name} to resume; run "
                             "without --resume and with --overwrite to start it again.") from None
        except AlreadyDone as err:
            raise SystemExit(f"{config.out_dir} is already at outer step {err.step}; pass "
                             f"--set outer_steps=N with N > {err.step} to train further.") from None
        json_path = ship(name, description, ship_overrides, config, result.theta_path, args.dest)
        print(f"wrote {json_path}: {json.dumps(result.final_eval)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
