"""The README's quickstart snippet runs as written and trains."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_code() -> str:
    text = README.read_text()
    section = text[text.index("## Quickstart"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quickstart_snippet_trains_a_least_squares_model():
    key = jax.random.PRNGKey(0)
    w_true = jax.random.normal(key, (8,))
    xs = jax.random.normal(jax.random.fold_in(key, 1), (4096, 8))
    ys = xs @ w_true

    def batch(step):
        idx = jax.random.randint(jax.random.fold_in(key, step), (64,), 0, xs.shape[0])
        return xs[idx], ys[idx]

    def loss_fn(params, data):
        x, y = data
        return jnp.mean((x @ params["w"] - y) ** 2)

    params = {"w": jnp.zeros(8)}
    namespace = {"jax": jax, "loss_fn": loss_fn, "batch": batch, "params": params}
    code = quickstart_code().replace("range(1000)", "range(60)")
    exec(compile(code, "README quickstart", "exec"), namespace)
    start = float(loss_fn(params, (xs, ys)))
    end = float(loss_fn(namespace["params"], (xs, ys)))
    assert jnp.isfinite(end) and end < 0.5 * start
