"""Known study results (no training) shared by the study's rendering, compare and report tests."""

from __future__ import annotations

from dataclasses import replace

from edgessl.study.results import CellResult


def cell(
    method: str,
    backbone: str,
    curve,
    seconds: float,
    macs: float,
    params: int,
    *,
    kwh: float | None = None,
    recipe: str = "paper",
) -> CellResult:
    return CellResult(
        method=method,
        backbone=backbone,
        epochs=curve[-1][0],
        steps=10 * curve[-1][0],
        curves={"knn": tuple(curve), "linear": ((curve[-1][0], 0.5),)},
        train_seconds=seconds,
        params=params,
        macs=macs,
        macs_224=macs * 49,
        image_size=32,
        energy_kwh=kwh,
        co2_kg=None if kwh is None else kwh * 0.42,
        recipe=recipe,
    )


def seeded(method: str, backbone: str, finals: list[float]) -> list[CellResult]:
    """One cell trained with len(finals) seeds, each with a 2-point curve ending at its final accuracy."""
    return [
        replace(
            cell(method, backbone, [(1, final / 2), (2, final)], 10.0, 1e7, 1_000_000),
            seed=seed,
        )
        for seed, final in enumerate(finals)
    ]


SEEDED = (
    seeded("simclr", "resnet18", [0.60, 0.62, 0.61])
    + seeded("rotnet", "resnet18", [0.30, 0.31, 0.32])
    + seeded("simclr", "squeezenet", [0.40, 0.45, 0.35])
    + seeded("rotnet", "squeezenet", [0.38, 0.44, 0.41])
)
