"""Matmul FLOPs of a model from its traced graph: each `MatMul`, `BatchMatMul*` or two-operand `Einsum` that
feeds an output costs 2 x (product of its index sizes). Element-wise ops are memory-bound and not counted. The
training count traces loss and gradients with respect to the trainable variables only (Grappler prunes the
gradient with respect to the inputs at run time)."""
from __future__ import annotations

import dataclasses
import math
import string
from typing import Dict, List, Sequence, Tuple

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.models.data_facts import DataFacts
from mean_tf.contract import CATEGORICAL_PREFIX, NUMERIC_KEY

MATMUL_TYPES = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")


@dataclasses.dataclass(frozen=True)
class MatmulOp:
    """One matmul-like op: its type, attributes (transposes or the einsum equation), input shapes and FLOPs."""

    op_type: str
    attrs: Tuple[Tuple[str, object], ...]
    shapes: Tuple[Tuple[int, ...], ...]
    flops: int

    @property
    def key(self):
        """Ops with the same key run the same kernel on the same shapes (timed once by the roofline)."""
        return (self.op_type, self.attrs, self.shapes)

    def describe(self) -> str:
        attrs = ",".join(f"{k}={v}" for k, v in self.attrs)
        shapes = " x ".join("[" + ",".join(map(str, s)) + "]" for s in self.shapes)
        return f"{self.op_type}({attrs}) {shapes}"


def einsum_flops(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """2 x product of the sizes of every index of a two-operand einsum (`...` expanded)."""
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: Dict[str, int] = {}
    spare = iter(c for c in string.ascii_letters if c not in equation)
    ellipsis = {}
    for labels, shape in zip(inputs, shapes):
        if "..." in labels:
            head, tail = labels.split("...")
            n = len(shape) - len(head) - len(tail)
            while len(ellipsis) < n:
                ellipsis[len(ellipsis)] = next(spare)
            labels = head + "".join(ellipsis[len(ellipsis) - n + i] for i in range(n)) + tail
        for label, size in zip(labels, shape):
            sizes[label] = max(sizes.get(label, 1), int(size))
    return 2 * math.prod(sizes.values())


def _static_shape(tensor) -> Tuple[int, ...]:
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        raise ValueError(f"op input {tensor.name} has an unknown shape {shape}; trace with a fixed batch size")
    return tuple(int(d) for d in shape.as_list())


def _matmul_op(op) -> MatmulOp | None:
    if op.type not in MATMUL_TYPES:
        return None
    shapes = tuple(_static_shape(t) for t in op.inputs)
    if op.type == "Einsum":
        equation = op.get_attr("equation")
        equation = equation.decode() if isinstance(equation, bytes) else equation
        if len(shapes) != 2:
            return None
        return MatmulOp("Einsum", (("equation", equation),), shapes, einsum_flops(equation, shapes))
    if op.type == "MatMul":
        ta, tb = bool(op.get_attr("transpose_a")), bool(op.get_attr("transpose_b"))
        (r, c), _ = shapes
        m, k = (c, r) if ta else (r, c)
        n = shapes[1][0] if tb else shapes[1][1]
        return MatmulOp("MatMul", (("transpose_a", ta), ("transpose_b", tb)), shapes, 2 * m * k * n)
    adj_x, adj_y = bool(op.get_attr("adj_x")), bool(op.get_attr("adj_y"))
    a, b = shapes
    m, k = (a[-1], a[-2]) if adj_x else (a[-2], a[-1])
    n = b[-2] if adj_y else b[-1]
    batch = math.prod(a[:-2] if len(a) >= len(b) else b[:-2])
    return MatmulOp("BatchMatMulV2", (("adj_x", adj_x), ("adj_y", adj_y)), shapes, 2 * batch * m * k * n)


def live_ops(graph: tf.Graph, outputs: Sequence[tf.Tensor]) -> List[tf.Operation]:
    """Ops that the given outputs (or the graph's stateful updates) depend on, through data and control edges."""
    seeds = [t.op for t in outputs] + [op for op in graph.get_operations() if op.type.startswith("Assign")]
    seen, stack = set(), list(seeds)
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op in seen]


def count_matmuls(graph: tf.Graph, outputs: Sequence[tf.Tensor]) -> List[MatmulOp]:
    """The matmul-like ops the outputs depend on."""
    return [m for m in (_matmul_op(op) for op in live_ops(graph, outputs)) if m is not None]


def input_specs(config: MEANConfig, facts: DataFacts, num_numeric: int, batch_size: int):
    """TensorSpecs of one batch: (features, targets) as `mean_tf.models` consume them."""
    features = {NUMERIC_KEY: tf.TensorSpec([batch_size, num_numeric], tf.float32, name=NUMERIC_KEY)}
    for name in facts.categorical_vocab_sizes:
        features[CATEGORICAL_PREFIX + name] = tf.TensorSpec([batch_size], tf.int64, name=CATEGORICAL_PREFIX + name)
    h = len(config.labels)
    targets = {"raw": tf.TensorSpec([batch_size, h], tf.float32), "scaled": tf.TensorSpec([batch_size, h], tf.float32),
               "bucket": tf.TensorSpec([batch_size, h], tf.int64)}
    return features, targets


@dataclasses.dataclass
class FlopCount:
    """Matmul FLOPs of one model: per example for the forward pass and for a training step (forward + backward)."""

    batch_size: int
    forward_ops: List[MatmulOp]
    train_ops: List[MatmulOp]

    @property
    def forward_per_example(self) -> float:
        return sum(op.flops for op in self.forward_ops) / self.batch_size

    @property
    def train_per_example(self) -> float:
        return sum(op.flops for op in self.train_ops) / self.batch_size

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "forward_flops_per_example": self.forward_per_example,
                "train_flops_per_example": self.train_per_example,
                "forward_matmul_ops": len(self.forward_ops), "train_matmul_ops": len(self.train_ops)}


def count_model_flops(model, num_numeric: int, batch_size: int) -> FlopCount:
    """Trace `model` (a CLTVModel) at a fixed batch size and count the matmul FLOPs of inference and of training."""
    features, targets = input_specs(model.config, model.facts, num_numeric, batch_size)

    @tf.function(autograph=False)
    def forward(x):
        return model(x, training=False)["cltv"]

    @tf.function(autograph=False)
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = model.loss_terms(y, model(x, training=True))["loss"]
        grads = tape.gradient(loss, model.trainable_variables)
        return [g for g in grads if g is not None]

    fwd = forward.get_concrete_function(features)
    trn = train.get_concrete_function(features, targets)
    return FlopCount(batch_size, count_matmuls(fwd.graph, fwd.outputs), count_matmuls(trn.graph, trn.outputs))
