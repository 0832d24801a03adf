"""Task families for meta-training learned optimizers.

``import tasks`` registers every family but loads no data; image data is loaded when
an image family is built (``tasks.registry.get("mlp-digits")``).
"""

from tasks import registry
from tasks.base import SPLITS, Task, TaskFamily

# Importing a family module registers it.
from tasks import quadratic  # noqa: E402,F401  isort: skip

__all__ = ["SPLITS", "Task", "TaskFamily", "registry"]
