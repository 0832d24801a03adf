"""Task families for meta-training learned optimizers.

``import tasks`` registers every family but loads no data; image data is loaded when
an image family is built, e.g. ``tasks.registry.get("mlp-digits")``.
"""

from tasks import registry
from tasks.base import SPLITS, Task, TaskFamily

# Importing a family module registers it (no data is touched here).
from tasks import quadratic, rosenbrock  # noqa: E402,F401  isort: skip
from tasks import conv, logreg, mlp  # noqa: E402,F401  isort: skip
from tasks import autoencoder, regression  # noqa: E402,F401  isort: skip

__all__ = ["SPLITS", "Task", "TaskFamily", "registry"]
