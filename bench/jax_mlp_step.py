"""JAX `jit` MLP train step with SGD: the reference step of ../shared/peers/compiled_ref.py
(784-512-512-10, batch 128, lr 1e-3), timed the same way (3 warm-up calls, median of 30).
Prints the median step time in ms. bench/jax_vs_kiln.sh alternates it with Kiln's compiled
step. Needs `pip install jax` (CPU)."""
import time
import jax
import jax.numpy as jnp


def bench(fn, warm=3, iters=30):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def init(k, i, o):
    return (jax.random.normal(k, (i, o)) * 0.03, jnp.zeros(o))


ks = jax.random.split(jax.random.PRNGKey(0), 5)
params = [init(ks[0], 784, 512), init(ks[1], 512, 512), init(ks[2], 512, 10)]


def loss_fn(params, x, y):
    h = x.reshape(x.shape[0], -1)
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < 2:
            h = jax.nn.relu(h)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], 1))


@jax.jit
def jstep(params, x, y):
    g = jax.grad(loss_fn)(params, x, y)
    return jax.tree_util.tree_map(lambda p, g: p - 1e-3 * g, params, g)


x = jax.random.normal(ks[3], (128, 1, 28, 28))
y = jax.random.randint(ks[4], (128,), 0, 10)


def step():
    global params
    params = jstep(params, x, y)
    jax.block_until_ready(params)


print(f"{bench(step) * 1e3:.3f}")
