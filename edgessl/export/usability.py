"""Which phone accelerators will take an exported file: ONNX Runtime's own mobile usability checker, in
process.

``python -m onnxruntime.tools.check_onnx_model_mobile_usability`` only logs prose; the same
analysis is a library (:mod:`onnxruntime.tools.mobile_helpers.usability_checker`), so this
module calls it directly and keeps its numbers instead of scraping log lines. As the
command does, the model is first optimised at ONNX Runtime's BASIC level (what an ORT
session does before it hands nodes to an execution provider) and shape-inferred; then
each provider's partitioner estimate gives the nodes it supports, the partitions they
fall into (each partition boundary is a copy between the accelerator and the CPU), the
operators it lacks and the nodes refused only because a shape is dynamic.

Providers covered are those the checker has operator lists for: NNAPI (Android) and
CoreML in its two model formats, MLProgram (iOS 15+, the default of recent ONNX Runtime
releases) and NeuralNetwork (older devices). XNNPACK is not covered by the checker; it is
a CPU-side provider, so nodes it does not take stay on the CPU provider without a device
copy (see docs/MOBILE.md).

The checker matches operator types only: caveats such as "NNAPI takes 2D Conv only" are
not checked, so a YES is a strong hint, not a guarantee; measure on the device.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgessl.export.metadata import PREFIX, ExportError
from edgessl.registry import Registry

METADATA_KEY = PREFIX + "usability"  # JSON of UsabilityReport.as_dict(), written into each exported .onnx

# provider name -> (shape-inferred model, require fixed input sizes) -> onnxruntime PartitioningInfo
Checker = Callable[[Any, bool], Any]
PROVIDERS: Registry[Checker] = Registry("execution provider")


@PROVIDERS.register("NNAPI")
def _nnapi(model: Any, require_fixed_input_sizes: bool) -> Any:
    from onnxruntime.tools.mobile_helpers.usability_checker import check_nnapi_partitions

    return check_nnapi_partitions(model, require_fixed_input_sizes)


@PROVIDERS.register("CoreML MLProgram")
def _coreml_mlprogram(model: Any, require_fixed_input_sizes: bool) -> Any:
    from onnxruntime.tools.mobile_helpers.usability_checker import check_coreml_partitions

    return check_coreml_partitions(model, require_fixed_input_sizes, "coreml_supported_mlprogram_ops.md")


@PROVIDERS.register("CoreML NeuralNetwork")
def _coreml_neuralnetwork(model: Any, require_fixed_input_sizes: bool) -> Any:
    from onnxruntime.tools.mobile_helpers.usability_checker import check_coreml_partitions

    return check_coreml_partitions(model, require_fixed_input_sizes, "coreml_supported_neuralnetwork_ops.md")


@dataclass(frozen=True)
class ProviderUsability:
    """One provider's share of one model, as ONNX Runtime's partitioner would assign it."""

    provider: str
    nodes: int
    supported_nodes: int
    partitions: int
    partition_sizes: tuple[int, ...]
    unsupported_ops: tuple[str, ...]  # "domain:Op" the provider has no kernel for
    dynamic_shape_nodes: int  # nodes refused only because an input shape is not fixed
    suitability: str  # the checker's own YES / MAYBE / NO

    @property
    def node_share(self) -> float:
        return self.supported_nodes / self.nodes if self.nodes else 0.0

    def verdict(self) -> str:
        """One line: how much the provider takes and, when not all, what stops it."""
        share = (
            f"{self.supported_nodes}/{self.nodes} nodes ({self.node_share:.1%}) in {self.partitions} "
            f"partition{'s' * (self.partitions != 1)}"
        )
        if self.supported_nodes == self.nodes and self.partitions == 1:
            return f"{self.suitability}: {share}, the whole graph runs on {self.provider}"
        reasons = []
        if self.dynamic_shape_nodes:
            reasons.append(
                f"{self.dynamic_shape_nodes} nodes with an input of unknown shape "
                "(a dynamic batch: export with --fixed-batch N; or an omitted optional input, which the "
                "checker counts so)"
            )
        if self.unsupported_ops:
            reasons.append(f"no {self.provider} kernel for {', '.join(self.unsupported_ops)}")
        return f"{self.suitability}: {share}; " + "; ".join(reasons)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "node_share": self.node_share, "verdict": self.verdict()}


@dataclass(frozen=True)
class UsabilityReport:
    """Every covered provider's usability of one ``.onnx`` file."""

    file: str
    providers: tuple[ProviderUsability, ...]

    def get(self, provider: str) -> ProviderUsability:
        PROVIDERS.get(provider)
        return next(entry for entry in self.providers if entry.provider == provider)

    def summary(self) -> str:
        """``NNAPI 100% (1 part.), CoreML MLProgram 27% (130 part.), ...``: the short form for tables."""
        return ", ".join(f"{p.provider} {p.node_share:.0%} ({p.partitions} part.)" for p in self.providers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "checker": "onnxruntime.tools.mobile_helpers.usability_checker",
            "providers": [p.as_dict() for p in self.providers],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UsabilityReport:
        names = {f for f in ProviderUsability.__dataclass_fields__}
        providers = []
        for entry in values["providers"]:
            fields = {key: entry[key] for key in names}
            fields["partition_sizes"], fields["unsupported_ops"] = (
                tuple(fields["partition_sizes"]),
                tuple(fields["unsupported_ops"]),
            )
            providers.append(ProviderUsability(**fields))
        return cls(values["file"], tuple(providers))


def _provider_usability(name: str, info: Any) -> ProviderUsability:
    return ProviderUsability(
        provider=name,
        nodes=int(info.num_nodes),
        supported_nodes=int(info.num_supported_nodes),
        partitions=int(info.num_partitions),
        partition_sizes=tuple(len(group) for group in info.supported_groups),
        unsupported_ops=tuple(sorted(info.unsupported_ops)),
        dynamic_shape_nodes=int(info.nodes_unsupported_due_to_dynamic_input),
        suitability=info.suitability().name,
    )


def check_usability(onnx_path: str | Path) -> UsabilityReport:
    """ONNX Runtime's mobile usability analysis of ``onnx_path`` for every provider in :data:`PROVIDERS`."""
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    path = Path(onnx_path)
    if path.suffix == ".ort":
        raise ExportError(
            f"{path} is in ORT format, which the usability checker cannot read; "
            "run --report on the .onnx it was converted "
            "from (a fixed-shape .ort keeps that file's basic-optimised graph, see docs/MOBILE.md)"
        )
    if not path.is_file():
        raise ExportError(f"no model file at {path}")
    with tempfile.TemporaryDirectory(prefix="edgessl-usability-") as scratch, _quiet():
        optimised = Path(scratch) / "basic.onnx"
        try:
            optimize_model(path, optimised)  # BASIC level, as check_onnx_model_mobile_usability does
            model = ModelProtoWithShapeInfo(optimised).model_with_shape_info
        except Exception as exc:  # noqa: BLE001 - onnxruntime / onnx raise their own types for unreadable files
            raise ExportError(
                f"cannot analyse {path}: {(str(exc).splitlines() or [type(exc).__name__])[0][:200]}"
            ) from None
        entries = tuple(_provider_usability(name, PROVIDERS.get(name)(model, True)) for name in PROVIDERS)
    return UsabilityReport(str(path), entries)


@contextlib.contextmanager
def _quiet():
    """The checker's helpers print and log as they go; a library call should not."""
    logger = logging.getLogger()
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(previous)


def attach_report(proto: Any, report: UsabilityReport) -> None:
    """Store ``report`` in ``proto``'s ``metadata_props`` under :data:`METADATA_KEY` (replacing an older
    one)."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (METADATA_KEY, json.dumps(report.as_dict(), sort_keys=True))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def recorded_report(onnx_path: str | Path) -> UsabilityReport | None:
    """The report an export stored in the file (read with ONNX Runtime), or None for files made elsewhere."""
    from edgessl.export.session import open_session

    raw = open_session(onnx_path).get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return None if raw is None else UsabilityReport.from_dict(json.loads(raw))
