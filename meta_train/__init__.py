"""Meta-training of learned optimizers with Persistent Evolution Strategies (on evosax).

    from meta_train import MetaTrainConfig
    from meta_train.train import train     # (the submodule name stays unshadowed)
    result = train(MetaTrainConfig(family="quadratic", outer_steps=300, out_dir="runs/q"))

Pieces, usable on their own: `UnrolledSystem` (the protocol), `LearnedOptimizerSystem`
(inner training of sampled tasks), `InfluenceBalancing` (toy), `ESGradientEstimator`
(PES / truncated ES / NRES over tasks x antithetic pairs), `MixtureEstimator` (one outer
step over several task families' estimators), `evaluate_theta`.
"""

from meta_train.config import MetaTrainConfig
from meta_train.evaluate import evaluate_theta
from meta_train.inner import InnerState, LearnedOptimizerSystem
from meta_train.mixture import MixtureEstimator, MixtureState
from meta_train.pes import STRATEGIES, ESGradientEstimator, EstimatorState, stagger_offsets
from meta_train.system import UnrolledSystem
from meta_train.toy import InfluenceBalancing
from meta_train.train import TrainResult, build

__all__ = [
    "ESGradientEstimator",
    "EstimatorState",
    "InfluenceBalancing",
    "InnerState",
    "LearnedOptimizerSystem",
    "MetaTrainConfig",
    "MixtureEstimator",
    "MixtureState",
    "STRATEGIES",
    "TrainResult",
    "UnrolledSystem",
    "build",
    "evaluate_theta",
    "stagger_offsets",
]
