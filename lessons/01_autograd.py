# %% [markdown]
# # Lesson 01 — Autograd: a small graph by hand, the topological walk, gradcheck
#
# Run time (2-core laptop CPU, measured, Python start-up included): about 2 s by default,
# 2 s with `--quick`.
#
# Every later lesson leans on one promise: call `loss.backward()` and every tensor
# with `requires_grad=True` receives d loss / d itself in `.grad`.  This lesson
# opens that promise up.  We
#
# 1. build a five-operation graph — one neuron, `L = (sigmoid(w·x + b) − y)²` —
#    and derive its gradients with pen and paper (the chain rule),
# 2. watch minidl walk the graph backwards in *topological order*, the only order
#    in which each node's gradient is complete before it is passed on,
# 3. meet `gradcheck`, the numerical test every op in minidl passes, and see it
#    catch a deliberately wrong backward.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup

import minidl
import minidl.functional as F
from minidl.autograd import Function, topological_order
from minidl.gradcheck import GradcheckError

args = setup("01_autograd", "Lesson 01: autograd by hand, the topological walk, gradcheck")

# %% [markdown]
# ## 1. One neuron, forward
#
# A *leaf* is a tensor we made ourselves; `requires_grad=True` asks for its gradient.
# Each operation on tensors records a `Function` (its *creator*) that knows how to
# push a gradient from its output back to its inputs.  We keep every intermediate
# so we can compare with the hand derivation below.  float64 throughout: the checks
# below compare to 1e-12.

# %%
f64 = np.float64
x = minidl.tensor(1.5, dtype=f64, requires_grad=True)
w = minidl.tensor(-0.8, dtype=f64, requires_grad=True)
b = minidl.tensor(0.3, dtype=f64, requires_grad=True)
y = 0.25                                  # the target: a plain number, no gradient

z = w * x + b                             # 2 ops: multiply, add
s = F.sigmoid(z)                          # 1 op
L = (s - y) ** 2                          # 2 ops: subtract, square
print(f"z = {z.item():.6f}   s = sigmoid(z) = {s.item():.6f}   L = {L.item():.6f}")

# %% [markdown]
# ## 2. Backward by hand
#
# The chain rule, read from the loss back to the leaves:
#
# * dL/ds = 2(s − y)
# * ds/dz = s(1 − s)  — the sigmoid's derivative written with its own output
# * dz/dw = x,  dz/dx = w,  dz/db = 1
#
# so dL/dw = 2(s − y)·s(1 − s)·x, and so on.  Only *products of local derivatives*:
# each node needs the gradient arriving from above and its own local derivative.

# %%
sv, xv, wv = s.item(), x.item(), w.item()
dL_ds = 2 * (sv - y)
dL_dz = dL_ds * sv * (1 - sv)
hand = {"x": dL_dz * wv, "w": dL_dz * xv, "b": dL_dz}

L.backward()
for name, leaf in (("x", x), ("w", w), ("b", b)):
    check(f"dL/d{name} by hand == autograd's ({hand[name]:+.6f})", leaf.grad, hand[name], atol=1e-14)

# %% [markdown]
# ## 3. The topological walk
#
# `backward()` must not hand a node's gradient on before *all* of it has arrived.
# In a chain that is trivial; as soon as a value is used twice, its gradient is the
# *sum* over its uses, and both contributions must be in before it moves on.
# minidl sorts the Functions so that every Function comes after the ones that made
# its inputs (`minidl.autograd.topological_order`) and walks that list *backwards*.
#
# A graph with a fork: `u = a·a + 3a`.  `a` feeds two ops, so
# du/da = 2a + 3 arrives in two parts, `a` (from `a·a`, twice) and 3.

# %%
a = minidl.tensor(2.0, dtype=f64, requires_grad=True)
u = a * a + 3 * a
order = topological_order(u.creator)
print("forward order :", " -> ".join(type(fn).__name__ for fn in order))
print("backward walks:", " -> ".join(type(fn).__name__ for fn in reversed(order)))
position = {id(fn): i for i, fn in enumerate(order)}
check("every Function comes after the Functions that made its inputs",
      all(position[id(p)] < i for i, fn in enumerate(order)
          for p in fn.parents if isinstance(p, Function)))

u.backward()
check("a value used twice gets the sum of both paths: du/da = 2a + 3 = 7", a.grad, 7.0, atol=0)

# %% [markdown]
# Below, the neuron's graph drawn in the order the walk visits it: each box shows the
# forward value (black) and the gradient dL/d(node) that arrives there (red).

# %%
boxes = [  # (label, forward value, gradient arriving, position)
    ("x", xv, hand["x"], (0, 2)), ("w", wv, hand["w"], (0, 1)), ("b", b.item(), hand["b"], (0, 0)),
    ("z = w·x + b", z.item(), dL_dz, (1.4, 1)), ("s = sigmoid(z)", sv, dL_ds, (2.8, 1)),
    ("L = (s − y)²", L.item(), 1.0, (4.2, 1)),
]
edges = [(0, 3), (1, 3), (2, 3), (3, 4), (4, 5)]
fig, ax = plt.subplots(figsize=(8, 3))
for label, value, grad, (px, py) in boxes:
    ax.text(px, py + 0.12, label, ha="center", fontsize=10, weight="bold",
            bbox={"boxstyle": "round", "fc": "#eef", "ec": "#446"})
    ax.text(px, py - 0.18, f"{value:+.3f}", ha="center", fontsize=9)
    ax.text(px, py - 0.38, f"∂L = {grad:+.3f}", ha="center", fontsize=9, color="crimson")
for i, j in edges:
    (x0, y0), (x1, y1) = boxes[i][3], boxes[j][3]
    ax.annotate("", xy=(x1 - 0.45, y1), xytext=(x0 + 0.3, y0),
                arrowprops={"arrowstyle": "->", "color": "gray"})
ax.set_xlim(-0.6, 4.9)
ax.set_ylim(-0.7, 2.5)
ax.axis("off")
ax.set_title("forward values (black), gradients from backward() (red)")
savefig(fig, args, "graph.png")

# %% [markdown]
# ## 4. gradcheck: trust, but verify
#
# A hand derivation does not scale to a convolution.  `minidl.gradcheck(fn, inputs)`
# compares autograd with *central differences*,
# (L(x + ε) − L(x − ε)) / 2ε, element by element, where L projects the output onto a
# fixed random direction.  It needs float64: in float32 the rounding error of the
# quotient is as large as the tolerance.  Here it checks a tiny conv net.

# %%
rng = np.random.default_rng(0)
size = 5 if args.quick else 8
img = minidl.tensor(rng.standard_normal((1, 2, size, size)), dtype=f64, requires_grad=True)
ker = minidl.tensor(rng.standard_normal((3, 2, 3, 3)), dtype=f64, requires_grad=True)


def tiny_net(image, kernel):
    return (F.relu(F.conv2d(image, kernel, padding=1)) ** 2).mean()


check("gradcheck passes for conv2d -> relu -> square -> mean",
      minidl.gradcheck(tiny_net, [img, ker]))

# %% [markdown]
# And it catches a mistake.  Here is a Function whose backward forgot the factor 2 of
# d(x²)/dx = 2x — the kind of slip a student makes writing their first op.

# %%
class BadSquare(Function):
    def forward(self, v):
        self.v = v
        return v * v

    def backward(self, grad_output):
        return grad_output * self.v  # wrong: should be 2 * v


try:
    minidl.gradcheck(lambda t: BadSquare.apply(t), [minidl.tensor([0.5, -1.0, 2.0], dtype=f64,
                                                                  requires_grad=True)])
    caught = None
except GradcheckError as error:
    caught = str(error).splitlines()[0]
print("gradcheck says:", caught)
check("gradcheck rejects a backward missing its factor 2", caught is not None)

# %% [markdown]
# ## What to remember
# * backward = products of local derivatives, walked in reverse topological order;
#   gradients from several uses of one value add up.
# * every op in minidl — conv2d, its transpose, pooling, Gram matrices — has this
#   float64 gradcheck in `tests/`; lesson 03 shows that conv2d's backward *is* the
#   transposed convolution.

# %%
finish(args)
