"""Train a flax (nnx) MLP on the embedded digits data with a learned optimizer via optax.

    python examples/flax_training_loop.py [--lopt mlp|lstm] [--steps 300]

Uses a shipped pretrained optimizer when one exists, else a freshly initialised MLP
optimizer (which starts out as Adam with its nominal learning rate).
"""

import argparse

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import l2o
from tasks.data import load_dataset

parser = argparse.ArgumentParser()
parser.add_argument("--lopt", default="mlp", choices=["mlp", "lstm"])
parser.add_argument("--steps", type=int, default=300)
args = parser.parse_args()

digits = load_dataset("digits")  # embedded; built offline from scikit-learn's digits
images = jnp.asarray(digits.train_images.reshape(-1, 64) / 255.0, jnp.float32)
labels = jnp.asarray(digits.train_labels)
test_images = jnp.asarray(digits.test_images.reshape(-1, 64) / 255.0, jnp.float32)

pretrained = [n for n in l2o.list_pretrained() if n.startswith(args.lopt)]
if pretrained:
    lopt, theta, _ = l2o.load_pretrained(pretrained[0])
else:
    lopt = l2o.registry.get(args.lopt)
    theta = lopt.init_meta_params(jax.random.key(0))
print(lopt.summary())

model = nnx.Sequential(nnx.Linear(64, 32, rngs=nnx.Rngs(0)), nnx.tanh, nnx.Linear(32, 10, rngs=nnx.Rngs(1)))
optimizer = nnx.Optimizer(model, lopt.as_optax(theta, num_steps=args.steps), wrt=nnx.Param)


def loss_fn(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_step(model, optimizer, key):
    idx = jax.random.randint(key, (128,), 0, images.shape[0])
    loss, grads = nnx.value_and_grad(loss_fn)(model, images[idx], labels[idx])
    optimizer.update(model, grads, value=loss)  # the loss reaches the optimizer as `value`
    return loss


for step, key in enumerate(jax.random.split(jax.random.key(1), args.steps)):
    loss = train_step(model, optimizer, key)
    if step % 50 == 0 or step == args.steps - 1:
        accuracy = jnp.mean(jnp.argmax(model(test_images), -1) == digits.test_labels)
        print(f"step {step:4d}  minibatch loss {float(loss):.4f}  test accuracy {float(accuracy):.3f}")
