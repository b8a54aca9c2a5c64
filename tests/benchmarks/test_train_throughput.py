"""benchmarks/train_throughput.py's pipelines on every kind of view: one (SEED) and multi-crop (DINO).

The GPU suite's CPU smoke run (test_gpu_suite.py) measures two-view methods and SEED; DINO's
paper head (65,536 outputs) over 10 crops is too slow for it on CI's cores, so here DINO runs
with a small head and 2 local crops: the same multi-crop code path at two sides, in seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark scripts import each other by module name

import train_throughput as tt

from edgessl.augment import MultiCrop, ViewAugment
from edgessl.training.config import TrainConfig

SMALL_DINO = {"out_dim": 128, "hidden_dim": 64, "bottleneck_dim": 32, "local_crops_number": 2}
SIZE, BATCH = 32, 8


def trainer(method: str, work: Path, overrides: dict[str, Any] | None = None) -> Any:
    config = TrainConfig(
        method=method, backbone="shufflenetv2", data="shapes10", split="train", image_size=SIZE, epochs=1,
        batch_size=BATCH, out=str(work / method), monitor_every=0, plots=False,
        method_overrides={**tt.method_overrides(method, work), **(overrides or {})},
    )  # fmt: skip
    return tt.build_trainer(config)


def test_only_a_distillation_method_gets_a_teacher_written_once_without_touching_the_rng(
    tmp_path: Path,
) -> None:
    assert tt.method_overrides("simclr", tmp_path) == tt.method_overrides("dino", tmp_path) == {}
    state = torch.get_rng_state()
    overrides = tt.method_overrides("seed", tmp_path)
    assert torch.equal(torch.get_rng_state(), state)
    weights = Path(overrides["teacher"]["weights"])
    assert overrides["teacher"]["source"] == tt.TEACHER_BACKBONE == "resnet18" and weights.parent == tmp_path
    written = weights.stat().st_mtime_ns
    assert tt.method_overrides("seed", tmp_path) == overrides and weights.stat().st_mtime_ns == written


@pytest.mark.parametrize(
    ("method", "overrides"), [("dino", SMALL_DINO), ("seed", None)], ids=["multi-crop", "one-view"]
)
def test_every_pipeline_steps_on_the_methods_own_views(
    method: str, overrides: dict[str, Any] | None, tmp_path: Path
) -> None:
    run = trainer(method, tmp_path, overrides)
    model = run.method
    template = model.make_views(run.train_step.images[:BATCH])
    recipes = tt.view_recipes(model, template)
    if method == "dino":
        crop: MultiCrop = model.augment
        assert crop.local_size < crop.global_size == SIZE
        assert recipes == [
            (crop.global_views[0], SIZE),
            (crop.global_views[1], SIZE),
            (crop.local_view, crop.local_size),
            (crop.local_view, crop.local_size),
        ]
        assert crop.global_views[0] != crop.global_views[1] != crop.local_view  # each view its own recipe
    else:
        assert isinstance(template, torch.Tensor) and recipes == [(model.augment, SIZE)]
    sample = tt.ViewsDataset(run.train_step.images[:2].cpu(), recipes)[0]
    assert [tuple(view.shape) for view in sample] == [(3, side, side) for _, side in recipes]
    assert all(view.dtype == torch.float32 and 0 <= view.min() <= view.max() <= 1 for view in sample)
    rebuilt = tt.as_method_views(template, [view[None] for view in sample])
    assert type(rebuilt) is type(template)

    steps = tt.pipelines(run, workers=1)
    assert set(steps) == {"end_to_end", "model_only", "torchvision", "views_only"}
    for step in steps.values():
        step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_two_view_recipes_and_what_is_not_covered() -> None:
    first, second = ViewAugment(), ViewAugment(blur_p=0.1)
    batch = torch.zeros(2, 3, SIZE, SIZE)

    class Pair(torch.nn.Module):  # BYOL's layout: one recipe per view
        name, image_size = "pair", SIZE

        def __init__(self) -> None:
            super().__init__()
            self.augment_first, self.augment_second = first, second

    pair = Pair()
    assert tt.view_recipes(pair, (batch, batch)) == [(first, SIZE), (second, SIZE)]
    del pair.augment_second  # SimCLR's layout: one recipe for both views
    assert tt.view_recipes(pair, (batch, batch)) == [(first, SIZE), (first, SIZE)]
    assert tt.as_method_views((batch, batch), [batch, batch + 1])[1].eq(1).all()
    with pytest.raises(SystemExit, match="not float image batches"):  # RotNet: views and rotation labels
        tt.view_recipes(pair, (batch, torch.zeros(2, dtype=torch.long)))
    with pytest.raises(SystemExit, match="sides"):
        tt.view_recipes(pair, torch.zeros(2, 3, SIZE // 2, SIZE // 2))
