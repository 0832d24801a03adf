"""Fair comparison of optimizers: tuned Adam, Lion and Lookahead vs learned optimizers.

    from baselines import compare, write_report
    results = compare({"lion": "lion", "mine": lambda n: lopt.as_optax(theta, n)},
                      train_family, steps=1000, heldout_family=heldout_family)
    write_report(results, "runs/compare")
"""

from baselines import registry
from baselines.compare import Results, Row, compare
from baselines.evaluate import EvalResult, evaluate, evaluate_grid
from baselines.optimizers import adam, eval_params, lion, lookahead, lookahead_slow_params, sgd
from baselines.report import write_report
from baselines.tune import TuneResult, tune

__all__ = [
    "EvalResult",
    "Results",
    "Row",
    "TuneResult",
    "adam",
    "compare",
    "eval_params",
    "evaluate",
    "evaluate_grid",
    "lion",
    "lookahead",
    "lookahead_slow_params",
    "registry",
    "sgd",
    "tune",
    "write_report",
]
