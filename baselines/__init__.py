"""Fair comparison of optimizers: tuned Adam, Lion and Lookahead vs learned optimizers.

    from baselines.compare import compare
    from baselines.report import write_report
    results = compare({"lion": "lion", "mine": lambda n: lopt.as_optax(theta, n)},
                      train_family, steps=1000, heldout_family=heldout_family)
    write_report(results, "runs/compare")

Submodules: ``optimizers`` (Adam, Lion, SGD, Lookahead), ``registry`` (name -> spec),
``evaluate`` (batched training runs), ``tune`` (grid search), ``metrics``,
``compare`` (the protocol), ``report`` (Markdown/JSON/PNG), ``cli`` (``l2o compare``).
Function names equal to a submodule's name are not re-exported here, so
``baselines.compare`` is always the module.
"""

from baselines import compare, evaluate, metrics, optimizers, registry, report, tune
from baselines.compare import Results, Row
from baselines.evaluate import EvalResult, evaluate_grid
from baselines.optimizers import adam, eval_params, lion, lookahead, lookahead_slow_params, sgd
from baselines.report import write_report
from baselines.tune import TuneResult

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
    "metrics",
    "optimizers",
    "registry",
    "report",
    "sgd",
    "tune",
    "write_report",
]
