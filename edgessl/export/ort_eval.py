"""Accuracy of an exported encoder with ONNX Runtime and numpy only -- no torch, as on a phone.

``edgessl eval --onnx exported/model.onnx --data stl10`` calls :func:`evaluate_onnx`.
Nothing imported on this path imports torch: images come from the torch-free
:mod:`edgessl.data.reading`, features from an ``onnxruntime.InferenceSession``, and the
protocols are numpy:

- ``knn``: the same votes as :mod:`edgessl.evaluation.knn`, so predictions match the
  PyTorch evaluation of the same checkpoint. ``euclidean`` ranks neighbours by
  ``|b|^2 - 2 q.b`` (the squared distance minus the per-query constant ``|q|^2``), takes
  the k nearest and majority-votes; a tie between classes goes to the tied class whose
  closest member is nearest (score ``count * (k + 1) - first_rank``). ``cosine`` weights
  the k most similar by ``exp(sim / T)``, T = 0.1.
- ``linear``: closed-form ridge regression onto one-hot targets on standardised
  features (a ridge classifier), solved once with ``numpy.linalg.solve``. Unlike the
  PyTorch probe (Adam, 100 epochs) it needs no learning rate, no epochs and no seed, so
  the number is deterministic on any device; it is a linear classifier, but not the
  same optimiser, so expect it near -- not equal to -- ``edgessl eval --protocol linear``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgessl.errors import ConfigError, DataError
from edgessl.export.metadata import ModelMetadata
from edgessl.export.session import open_session
from edgessl.registry import Registry

INPUT_NAME = "images"
MEMORY_BUDGET = 256 * 2**20  # bytes of distance matrix per query chunk
RIDGE_ALPHA = 1.0  # ridge penalty on standardised features (per-feature variance 1)

# (queries (c, D), bank (N, D), bank_labels (N,), k, num_classes) -> (c,) int64
Voter = Callable[[np.ndarray], np.ndarray]  # a chunk of queries -> their predicted classes
# (bank, bank_labels, k, num_classes) -> Voter; per-bank work is done once, not per chunk
VOTES: Registry[Callable[[np.ndarray, np.ndarray, int, int], Voter]] = Registry("kNN metric")
COSINE_TEMPERATURE = 0.1


def takes_frames(session: Any) -> bool:
    """True for a camera-input model (``--input uint8-nhwc``): uint8 ``(N, H, W, 3)`` instead of float
    NCHW."""
    return session.get_inputs()[0].type == "tensor(uint8)"


def check_images(images: np.ndarray, session: Any) -> None:
    """Reject batches the model cannot take, in one line, before ONNX Runtime does in ten."""
    # e.g. ['batch', 3, 96, 96], [8, 3, 96, 96] or ['batch', 480, 640, 3]
    expected = session.get_inputs()[0].shape
    channels = expected[3] if takes_frames(session) else (expected[1] if len(expected) == 4 else None)
    if len(expected) != 4 or channels != 3 or len(session.get_outputs()[0].shape) != 2:
        shapes = f"input {expected} -> output {session.get_outputs()[0].shape}"
        raise DataError(
            f"this ONNX graph ({shapes}) is not an edgessl encoder "
            "(input N,3,H,W or N,H,W,3 -> features N,D), though "
            "it may carry copied edgessl metadata; export the model again with 'edgessl export'"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise DataError(
            f"images must be (N, 3, H, W) RGB, got shape {tuple(images.shape)}; "
            "convert grayscale/RGBA images to RGB"
        )
    height, width = expected[1:3] if takes_frames(session) else expected[2:]
    if tuple(images.shape[2:]) != (height, width):
        raise DataError(
            f"images are {images.shape[2]}x{images.shape[3]} but the model takes {height}x{width}; "
            f"pass image_size={height}"
        )


def model_input(session: Any, images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 3, H, W)`` images as the model takes them: float32 / 255 NCHW, or uint8 NHWC frames."""
    if takes_frames(session):
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    return images.astype(np.float32) / np.float32(255.0)


def run_batches(
    session: Any,
    inputs: np.ndarray,
    batch_size: int = 64,
    output: str | None = None,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``(N, ...)`` outputs of ``session`` (its first, or ``output``) on ``inputs`` (``prepare``-d chunk
    by chunk).

    A fixed-batch model (``--fixed-batch B``) is fed exactly B rows per call, the last
    chunk zero-padded and its padding dropped.
    """
    fixed = session.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) else batch_size
    outputs = []
    for start in range(0, len(inputs), step):
        chunk = inputs[start : start + step]
        chunk = prepare(chunk) if prepare is not None else chunk
        used = len(chunk)
        if isinstance(fixed, int) and used < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - used, *chunk.shape[1:]), chunk.dtype)])
        outputs.append(session.run([output or session.get_outputs()[0].name], {INPUT_NAME: chunk})[0][:used])
    return np.concatenate(outputs)


def onnx_features(
    session: Any, images: np.ndarray, batch_size: int = 64, output: str | None = None
) -> np.ndarray:
    """``(N, ...)`` outputs of ``session`` (its first, or ``output``) on uint8 ``(N, 3, H, W)`` images.

    Images are converted per chunk to what the model takes (:func:`model_input`), so a
    camera-input model and its float twin see the same pixels.
    """
    check_images(images, session)
    return run_batches(session, images, batch_size, output, prepare=lambda chunk: model_input(session, chunk))


def latency_ms(session: Any, batch_size: int, image_size: int, repeats: int = 20, warmup: int = 5) -> float:
    """Median wall time of one ``session.run`` on a random batch of what the model takes, after
    ``warmup`` untimed runs."""
    from edgessl.timing import summarise, time_calls

    shape = session.get_inputs()[0].shape
    rng = np.random.default_rng(0)
    if takes_frames(session):
        batch = {INPUT_NAME: rng.integers(0, 256, (batch_size, *shape[1:]), dtype=np.uint8)}
    else:
        batch = {INPUT_NAME: rng.random((batch_size, 3, image_size, image_size), dtype=np.float32)}
    times = time_calls({"run": lambda: session.run(None, batch)}, warmup, repeats)["run"]
    return summarise(times)[0]


@VOTES.register("euclidean")
def euclidean_majority_vote(bank: np.ndarray, bank_labels: np.ndarray, k: int, num_classes: int) -> Voter:
    """Majority vote of the k nearest by Euclidean distance; ties go to the class with the nearest member."""
    squared_norms = (bank * bank).sum(1)[None, :]

    def vote(queries: np.ndarray) -> np.ndarray:
        partial = squared_norms - 2.0 * (queries @ bank.T)
        neighbours = np.argsort(partial, axis=1, kind="stable")[:, :k]
        return tie_broken_vote(bank_labels[neighbours], k, num_classes)

    return vote


def tie_broken_vote(votes_for: np.ndarray, k: int, num_classes: int) -> np.ndarray:
    """``argmax(count * (k + 1) - first_rank)`` over classes; ``votes_for`` is (c, k), nearest first."""
    rows = np.arange(len(votes_for))[:, None]
    counts = np.zeros((len(votes_for), num_classes), dtype=np.int64)
    np.add.at(counts, (rows, votes_for), 1)
    first_rank = np.full((len(votes_for), num_classes), k, dtype=np.int64)
    np.minimum.at(first_rank, (rows, votes_for), np.broadcast_to(np.arange(k), votes_for.shape))
    return (counts * (k + 1) - first_rank).argmax(1)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@VOTES.register("cosine")
def cosine_weighted_vote(bank: np.ndarray, bank_labels: np.ndarray, k: int, num_classes: int) -> Voter:
    """The k most cosine-similar vote with weight ``exp(sim / T)`` (InstDisc's protocol)."""
    unit_bank = _unit_rows(bank)

    def vote(queries: np.ndarray) -> np.ndarray:
        similarity = _unit_rows(queries) @ unit_bank.T
        top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        weights = np.exp(np.take_along_axis(similarity, top, axis=1) / COSINE_TEMPERATURE)
        scores = np.zeros((len(queries), num_classes), dtype=np.float64)
        np.add.at(scores, (np.arange(len(queries))[:, None], bank_labels[top]), weights)
        return scores.argmax(1)

    return vote


def knn_predict(
    bank: np.ndarray,
    bank_labels: np.ndarray,
    queries: np.ndarray,
    num_classes: int,
    k: int = 200,
    metric: str = "euclidean",
) -> np.ndarray:
    """Predicted class of every query, in chunks sized from a memory budget (any number of queries)."""
    vote_with = VOTES.get(metric)
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if len(bank) == 0:
        raise DataError("the kNN bank is empty: the training split has no labelled images")
    bank = bank.astype(np.float32, copy=False)
    k = min(k, len(bank))
    rows = max(1, MEMORY_BUDGET // (3 * 8 * len(bank)))
    vote = vote_with(bank, bank_labels, k, num_classes)
    chunks = [
        vote(queries[start : start + rows].astype(np.float32, copy=False))
        for start in range(0, len(queries), rows)
    ]
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)


def fit_ridge_classifier(
    features: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = RIDGE_ALPHA
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge onto one-hot targets; returns ``(W (D, C), b (C,))`` acting on raw features.

    Standardisation (train mean/std) is folded into ``W`` and ``b`` so the result applies
    to features as the encoder emits them, which is also what an in-graph head needs.
    """
    x = features.astype(np.float64)
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-6)
    z = (x - mean) / std
    targets = np.eye(num_classes)[labels] - 1.0 / num_classes  # centred one-hot: no intercept needed in z
    weight = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ targets)
    scaled = weight / std[:, None]
    return scaled, -(mean @ scaled)


def _knn_protocol(train_x, train_y, test_x, num_classes, options) -> np.ndarray:
    return knn_predict(train_x, train_y, test_x, num_classes, k=options["k"], metric=options["metric"])


def _linear_protocol(train_x, train_y, test_x, num_classes, options) -> np.ndarray:
    weight, bias = fit_ridge_classifier(train_x, train_y, num_classes)
    return (test_x.astype(np.float64) @ weight + bias).argmax(1)


ONNX_PROTOCOLS: Registry[Callable[..., np.ndarray]] = Registry("ONNX evaluation protocol")
ONNX_PROTOCOLS.register("knn")(_knn_protocol)
ONNX_PROTOCOLS.register("linear")(_linear_protocol)


def _input_size(metadata: Any, onnx_path: str | Path) -> int:
    """The square image side the file takes: the model's size, or a camera-input file's square frame size."""
    if metadata.input_format == "float-nchw":
        return metadata.image_size
    height, width = metadata.frame_size
    if height != width:
        raise ConfigError(
            f"{onnx_path} takes {height}x{width} camera frames; "
            "evaluate the float-input file it was made from instead"
        )
    return height


def evaluate_onnx(
    onnx_path: str | Path,
    data: str,
    *,
    data_root: str | Path | None = None,
    protocols: Sequence[str] = ("knn",),
    k: int = 200,
    metric: str = "euclidean",
    image_size: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Accuracy of the exported encoder at ``onnx_path`` on ``data`` (train split = bank / fit, test
    split = score).

    ``image_size`` defaults to the size recorded in the model's metadata. Returns
    ``{"onnx", "data", "image_size", "train_size", "test_size", "feature_dim",
    "<protocol>": {"accuracy", ...options}, "predictions": {protocol: ndarray}}``.
    """
    from edgessl.data.reading import read_labelled_splits

    runners = {name: ONNX_PROTOCOLS.get(name) for name in protocols}
    VOTES.get(metric)
    session = open_session(onnx_path)
    metadata = ModelMetadata.from_props(dict(session.get_modelmeta().custom_metadata_map), str(onnx_path))
    if metadata.head != "none":
        raise ConfigError(
            f"{onnx_path} is a classifier ({metadata.head} head); "
            "evaluate the encoder-only export (--head none) instead"
        )
    size = image_size or _input_size(metadata, onnx_path)
    train, test = read_labelled_splits(data, data_root, size)
    train_x = onnx_features(session, train.images, batch_size)
    test_x = onnx_features(session, test.images, batch_size)
    num_classes = len(train.class_names)
    options = {"k": min(k, len(train_x)), "metric": metric}
    result: dict[str, Any] = {
        "onnx": str(onnx_path),
        "data": data,
        "image_size": size,
        "train_size": len(train_x),
        "test_size": len(test_x),
        "feature_dim": int(train_x.shape[1]),
        "predictions": {},
    }
    for name, runner in runners.items():
        predictions = runner(train_x, train.labels, test_x, num_classes, options)
        result["predictions"][name] = predictions
        details = options if name == "knn" else {"solver": "ridge", "alpha": RIDGE_ALPHA}
        result[name] = {"accuracy": float((predictions == test.labels).mean()), **details}
    return result
