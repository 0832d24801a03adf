"""``python -m l2o.app ...`` runs the ``l2o`` command line."""

import sys

from l2o.app.cli import main

sys.exit(main())
