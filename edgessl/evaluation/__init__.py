"""Downstream evaluation of learned representations: kNN, linear probe, fine-tuning, sweeps.

``PROTOCOLS`` maps a protocol name to its options dataclass and runner; importing this
package registers ``knn``, ``linear`` and ``finetune``. Use
:func:`evaluate_representation` on a model and two labelled splits, or
:func:`evaluate_checkpoints` / :func:`sweep_run` on a run folder.
"""

from __future__ import annotations

from edgessl.devices import resolve_device
from edgessl.evaluation import finetune, knn, linear  # noqa: F401  (registers the protocols)
from edgessl.evaluation.features import extract_features
from edgessl.evaluation.finetune import FinetuneOptions
from edgessl.evaluation.knn import KNN_METRICS, KnnOptions, knn_predict
from edgessl.evaluation.linear import LinearOptions, fit_linear_probe
from edgessl.evaluation.protocols import PROTOCOLS, Protocol, evaluate_representation
from edgessl.evaluation.results import EvalResult
from edgessl.evaluation.sweep import SweepResult, evaluate_checkpoints, sweep_run

__all__ = [
    "KNN_METRICS",
    "PROTOCOLS",
    "EvalResult",
    "FinetuneOptions",
    "KnnOptions",
    "LinearOptions",
    "Protocol",
    "SweepResult",
    "evaluate_checkpoints",
    "evaluate_representation",
    "extract_features",
    "fit_linear_probe",
    "knn_predict",
    "resolve_device",
    "sweep_run",
]
