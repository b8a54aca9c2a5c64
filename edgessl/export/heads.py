"""Self-contained classifiers: the encoder graph with a head appended, one file from images to classes.

Both heads replace the ``features`` output with ``scores`` ``(N, C)`` float32 and
``label`` ``(N,)`` int64, and record the class names in the metadata.

- **kNN**: the labelled feature bank is stored as initialisers. The graph computes the
  same ranking as :mod:`edgessl.evaluation.knn` (``|b|^2 - 2 q.b``, ``|b|^2`` precomputed
  with numpy), ``TopK`` (smallest, sorted: ties to the lower bank index), the labels of
  the k nearest, their one-hot votes, and breaks ties between classes towards the class
  whose closest member is nearest: ``argmax(count * (k + 1) + max(onehot * (k - rank)))``
  -- the same order as the Python ``count * (k + 1) - first_rank``. ``scores`` are vote
  fractions (count / k).
- **linear**: ``Gemm`` with a head trained on frozen features by Adam (the evaluation
  probe's recipe: standardised features, cross-entropy), its standardisation folded
  into the weights; ``scores`` are softmax probabilities.

Heads are built with ``onnx.helper`` on the verified encoder graph rather than by
re-exporting a torch module: the encoder part stays byte-identical to the checked one.

:data:`HEADS` fits each head on a labelled feature bank once and gives it in every form an
export needs (:class:`FittedHead`): the Python classifier every file is checked against, the
ONNX graph, and the PyTorch module (:mod:`edgessl.export.deploy`) the other formats convert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgessl.export.onnx_export import BATCH_DIM, OUTPUT_NAME
from edgessl.export.ort_eval import knn_predict
from edgessl.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from edgessl.export.options import ExportOptions

SCORES, LABEL = "scores", "label"
HEAD_AGREEMENT = 0.99  # in-file head vs the Python classifier on the verification images


def _with_head(
    encoder: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    num_classes: int,
) -> onnx.ModelProto:
    """A copy of ``encoder`` whose ``features`` output feeds ``nodes``; outputs become scores and label."""
    model = onnx.ModelProto()
    model.CopyFrom(encoder)
    graph = model.graph
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_value if batch.HasField("dim_value") else BATCH_DIM
    del graph.output[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    graph.output.extend(
        [
            helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [batch_dim, num_classes]),
            helper.make_tensor_value_info(LABEL, TensorProto.INT64, [batch_dim]),
        ]
    )
    return model


def knn_head(
    encoder: onnx.ModelProto, bank: np.ndarray, bank_labels: np.ndarray, num_classes: int, k: int = 200
) -> onnx.ModelProto:
    """Encoder + Euclidean majority-vote kNN over ``bank`` (N, D) with ``bank_labels`` (N,)."""
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    k = min(k, len(bank))
    init = [
        numpy_helper.from_array(np.ascontiguousarray(bank.T), "knn_bank_t"),
        numpy_helper.from_array((bank * bank).sum(1).astype(np.float32), "knn_bank_sq"),
        numpy_helper.from_array(bank_labels.astype(np.int64), "knn_bank_labels"),
        numpy_helper.from_array(np.array([k], np.int64), "knn_k"),
        numpy_helper.from_array(np.array(2.0, np.float32), "knn_two"),
        numpy_helper.from_array(np.array([num_classes], np.int64), "knn_depth"),
        numpy_helper.from_array(np.array([0.0, 1.0], np.float32), "knn_onehot_values"),
        numpy_helper.from_array((k - np.arange(k, dtype=np.float32)).reshape(1, k, 1), "knn_rank_weight"),
        numpy_helper.from_array(np.array(k + 1.0, np.float32), "knn_count_weight"),
        numpy_helper.from_array(np.array(float(k), np.float32), "knn_k_float"),
        numpy_helper.from_array(np.array([1], np.int64), "knn_axis1"),
    ]
    nodes = [
        helper.make_node("MatMul", [OUTPUT_NAME, "knn_bank_t"], ["knn_dot"]),
        helper.make_node("Mul", ["knn_dot", "knn_two"], ["knn_dot2"]),
        helper.make_node("Sub", ["knn_bank_sq", "knn_dot2"], ["knn_partial_distance"]),
        helper.make_node(
            "TopK",
            ["knn_partial_distance", "knn_k"],
            ["knn_top_distance", "knn_top_index"],
            axis=1,
            largest=0,
            sorted=1,
        ),
        helper.make_node("Gather", ["knn_bank_labels", "knn_top_index"], ["knn_top_label"], axis=0),
        helper.make_node(
            "OneHot", ["knn_top_label", "knn_depth", "knn_onehot_values"], ["knn_onehot"], axis=-1
        ),
        helper.make_node("ReduceSum", ["knn_onehot", "knn_axis1"], ["knn_counts"], keepdims=0),
        helper.make_node("Mul", ["knn_onehot", "knn_rank_weight"], ["knn_ranked"]),
        helper.make_node("ReduceMax", ["knn_ranked", "knn_axis1"], ["knn_nearest_bonus"], keepdims=0),
        helper.make_node("Mul", ["knn_counts", "knn_count_weight"], ["knn_weighted_counts"]),
        helper.make_node("Add", ["knn_weighted_counts", "knn_nearest_bonus"], ["knn_tie_broken"]),
        helper.make_node("ArgMax", ["knn_tie_broken"], [LABEL], axis=1, keepdims=0),
        helper.make_node("Div", ["knn_counts", "knn_k_float"], [SCORES]),
    ]
    return _with_head(encoder, nodes, init, num_classes)


def linear_probe(
    bank: np.ndarray, labels: np.ndarray, num_classes: int, epochs: int
) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation probe trained on frozen ``bank`` features, as ``(weight (D, C), bias (C,))`` on raw
    features (its standardisation folded in): what every format's linear head computes."""
    import torch

    from edgessl.evaluation.linear import LinearOptions, train_linear_classifier

    trained = train_linear_classifier(
        torch.from_numpy(bank), torch.from_numpy(labels), num_classes, LinearOptions(epochs=epochs)
    )
    weight = trained.head.weight.detach().T.numpy().astype(np.float32)
    return weight, trained.head.bias.detach().numpy().astype(np.float32)


def linear_head(encoder: onnx.ModelProto, weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """Encoder + ``softmax(features @ weight + bias)``; ``weight`` is (D, C)."""
    init = [
        numpy_helper.from_array(weight.astype(np.float32), "linear_weight"),
        numpy_helper.from_array(bias.astype(np.float32), "linear_bias"),
    ]
    nodes = [
        helper.make_node("Gemm", [OUTPUT_NAME, "linear_weight", "linear_bias"], ["linear_logits"]),
        helper.make_node("Softmax", ["linear_logits"], [SCORES], axis=1),
        helper.make_node("ArgMax", ["linear_logits"], [LABEL], axis=1, keepdims=0),
    ]
    return _with_head(encoder, nodes, init, weight.shape[1])


@dataclass(frozen=True)
class FittedHead:
    """One head fitted on a labelled bank, in the three forms an export needs, so that every format's
    file is the same classifier."""

    predict: Callable[[np.ndarray], np.ndarray]  # features -> the Python classifier's labels
    graph: Callable[[onnx.ModelProto], onnx.ModelProto]  # encoder graph -> the graph with this head
    module: Callable[[], nn.Module]  # the same head as a PyTorch module, for the torch-side formats


# (bank features, bank labels, num classes, options) -> the fitted head
HeadFit = Callable[[np.ndarray, np.ndarray, int, "ExportOptions"], FittedHead]
HEADS: Registry[HeadFit | None] = Registry("export head")
HEADS.register("none")(None)


@HEADS.register("knn")
def fit_knn(bank: np.ndarray, labels: np.ndarray, num_classes: int, options: ExportOptions) -> FittedHead:
    """The labelled bank itself is the classifier: nothing is trained."""

    def module() -> nn.Module:
        from edgessl.export.deploy import KnnHead

        return KnnHead(bank, labels, num_classes, options.k)

    return FittedHead(
        predict=lambda features: knn_predict(bank, labels, features, num_classes, k=options.k),
        graph=lambda encoder: knn_head(encoder, bank, labels, num_classes, options.k),
        module=module,
    )


@HEADS.register("linear")
def fit_linear(bank: np.ndarray, labels: np.ndarray, num_classes: int, options: ExportOptions) -> FittedHead:
    """The evaluation probe, trained here once (:func:`linear_probe`)."""
    weight, bias = linear_probe(bank, labels, num_classes, options.linear_epochs)

    def module() -> nn.Module:
        from edgessl.export.deploy import LinearHead

        return LinearHead(weight, bias)

    return FittedHead(
        predict=lambda features: (features @ weight + bias).argmax(1),
        graph=lambda encoder: linear_head(encoder, weight, bias),
        module=module,
    )
