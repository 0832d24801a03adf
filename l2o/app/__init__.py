"""The application layer: the ``l2o`` command line and the demo.

These modules orchestrate every package (tasks, l2o, meta_train, baselines), so they sit
above all of them; the learned-optimizer modules of `l2o` import none of this.

    python -m l2o.app demo --out runs/demo      # same as the ``l2o`` console script
"""
