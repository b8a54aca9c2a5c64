"""Pretraining throughput: the trainer end to end vs the model alone vs the usual torchvision pipeline.

Side by side in one run, per (method, backbone) at 96x96, same model, batch and optimiser:

(a) end to end: the trainer's own step (``Trainer.step``): index the uint8 dataset, move
    the batch to the device, make the views there (batched, per-sample parameters), loss,
    backward, optimiser and EMA step;
(b) model-only ceiling: views made once beforehand; loss + backward + optimiser step;
(c) the usual pipeline: torchvision transforms per sample on PIL images in DataLoader
    workers (2), the method's views collated and fed to the same loss + backward + step;
and, to explain (a)/(b), the method's view making alone on the same batch.

Any method whose views are :class:`~edgessl.augment.views.ViewAugment` outputs: one view
(SEED), two (SimCLR, MoCo v2, BYOL, Barlow Twins, VICReg) or DINO's multi-crop (2 global
views and N local ones at a smaller side, each with its own recipe); pipeline (c) rebuilds
each view's recipe and side in torchvision (:func:`view_recipes`). A distillation method
gets a random-weights ResNet-18 teacher (:func:`method_overrides`): what the teacher has
learnt does not change the step's cost. Not RotNet or Split-Brain, whose views are more
than a ViewAugment's output.

The three run interleaved, one timed step each per round, medians over rounds, so load
from other jobs hits them alike. Targets: (a)/(b) >= 0.8 on the CPU (>= 0.9 on a GPU);
(a)/(c) >= 3 on a GPU. Writes benchmarks/results/train_throughput.md and .json.

Run: python benchmarks/train_throughput.py [--methods simclr byol dino seed] [--batch 32] [--rounds 6]
     [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from results_io import device_name, machine, write_results
from rich.console import Console
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from edgessl.augment.multicrop import MultiCrop
from edgessl.augment.views import ViewAugment
from edgessl.backbones import build_backbone
from edgessl.methods import method_class
from edgessl.timing import time_calls
from edgessl.training.config import TrainConfig
from edgessl.training.resolve import resolve_run
from edgessl.training.sampling import epoch_permutation
from edgessl.training.trainer import Trainer

NAME = "train_throughput"
DATA = "shapes10"
SPLIT = "train"  # 2,000 images: enough for a few rounds of any batch size here


def torchvision_view(view: ViewAugment, size: int) -> v2.Compose:
    """The same recipe as an edgessl ViewAugment, the way SSL repositories write it (PIL in, tensor out)."""
    jitter = v2.ColorJitter(view.brightness, view.contrast, view.saturation, view.hue)
    steps: list[Any] = [
        v2.RandomResizedCrop(size, scale=view.crop_scale, ratio=view.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(view.hflip_p),
        v2.RandomApply([jitter], p=view.jitter_p),
        v2.RandomGrayscale(view.grayscale_p),
    ]
    if view.blur_p > 0:
        kernel = max(3, int(size * view.blur_kernel_fraction) // 2 * 2 + 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, view.blur_sigma)], p=view.blur_p))
    if view.solarize_p > 0:
        steps.append(v2.RandomSolarize(128, p=view.solarize_p))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    return v2.Compose(steps)


View = tuple[ViewAugment, int]  # one view's recipe and its output side


class ViewsDataset(Dataset):
    """Per-sample PIL augmentation, as in the usual SSL DataLoader pipelines: one transform per view."""

    def __init__(self, images: torch.Tensor, recipes: Sequence[View]) -> None:
        self.images = images
        self.transforms = [torchvision_view(view, size) for view, size in recipes]
        self.to_pil = v2.ToPILImage()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        image = self.to_pil(self.images[index])
        return tuple(transform(image) for transform in self.transforms)


def view_batches(views: Any) -> list[torch.Tensor]:
    """The batches of one ``make_views`` result: a tensor is one view, a tuple or list holds one per view."""
    batches = [views] if isinstance(views, torch.Tensor) else list(views)
    if not all(isinstance(batch, torch.Tensor) and batch.is_floating_point() for batch in batches):
        raise SystemExit(
            "this method's views are not float image batches; this benchmark covers augmented views"
        )
    return batches


def view_recipes(method: Any, views: Any) -> list[View]:
    """(recipe, output side) of each view ``method.make_views`` returns, in its order.

    ``views`` is one ``make_views`` result, which fixes the number of views and their sides.
    A method keeping a :class:`MultiCrop` (DINO) has its two global recipes at the global
    side, then its local recipe once per local crop at the local side. Otherwise the recipes
    are the method's ViewAugment attributes, at its image size: one per view (BYOL's pair),
    or one for every view (SimCLR and MoCo v2 draw both views from it; SEED makes one).
    """
    batches = view_batches(views)
    crops = [value for value in vars(method).values() if isinstance(value, MultiCrop)]
    augments = [value for value in vars(method).values() if isinstance(value, ViewAugment)]
    if crops:
        crop = crops[0]
        recipes = [(view, crop.global_size) for view in crop.global_views]
        recipes += [(crop.local_view, crop.local_size)] * crop.local_crops
    elif len(augments) == 1:
        recipes = [(augments[0], method.image_size)] * len(batches)
    elif len(augments) == len(batches):
        recipes = [(augment, method.image_size) for augment in augments]
    else:
        raise SystemExit(
            f"{method.name} keeps {len(augments)} ViewAugment attribute(s) for {len(batches)} views; "
            "this benchmark covers methods whose views are ViewAugment or MultiCrop outputs"
        )
    sides = [batch.shape[-1] for batch in batches]
    if [size for _, size in recipes] != sides:
        raise SystemExit(
            f"{method.name}: recipes at sides {[size for _, size in recipes]} for views at sides {sides}"
        )
    return recipes


def as_method_views(template: Any, batches: Sequence[torch.Tensor]) -> Any:
    """Batches of views, one per recipe, in the container the method's ``make_views`` returns
    (``template``)."""
    if isinstance(template, torch.Tensor):
        (batch,) = batches
        return batch
    return type(template)(batches)


TEACHER_BACKBONE = "resnet18"  # the study's distillation teacher


def method_overrides(method: str, workdir: Path) -> dict[str, Any]:
    """What ``method`` needs beyond its defaults to train here: nothing, or a distillation method's teacher.

    A method whose config has a ``teacher`` gets a ResNet-18 with seeded random weights,
    written once into ``workdir`` (the global RNG is left as it was): the step costs the same
    whatever the teacher has learnt.
    """
    if "teacher" not in method_class(method).Config.__dataclass_fields__:
        return {}
    weights = Path(workdir) / f"teacher-{TEACHER_BACKBONE}.pth"
    if not weights.is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            torch.save(build_backbone(TEACHER_BACKBONE).state_dict(), weights)
    return {"teacher": {"source": TEACHER_BACKBONE, "weights": str(weights)}}


def loader_batches(loader: DataLoader) -> Iterator[list[torch.Tensor]]:
    while True:
        yield from loader


def build_trainer(config: TrainConfig) -> Trainer:
    """The trainer of ``config``, quiet, in training mode: what every pipeline below shares."""
    trainer = Trainer(resolve_run(config), resume=False, console=Console(quiet=True), progress=False)
    trainer.train_step.model.train()
    return trainer


def pipelines(trainer: Trainer, workers: int = 2) -> dict[str, Callable[[], None]]:
    """One timed step of each pipeline, sharing the trainer's model, optimiser, precision and batch size.

    The model-only and torchvision steps run under the trainer's autocast (as its own
    ``forward`` does under mixed precision), so all three compare the same arithmetic.
    """
    model, optimizer, accelerator = trainer.method, trainer.train_step.optimizer, trainer.accelerator
    images, batch = trainer.train_step.images, trainer.plan.global_batch
    order = epoch_permutation(len(images), trainer.config.seed, 0)
    position = {"batch": 0}

    def end_to_end() -> None:
        trainer.step(order, position["batch"] % trainer.plan.steps_per_epoch)
        position["batch"] += 1

    clean = images[order[:batch].to(images.device)].to(accelerator.device)
    with torch.no_grad(), accelerator.autocast():
        ready_views = model.make_views(clean)

    def train_on(views: Any) -> None:
        with accelerator.autocast():
            loss = model.step_output(views).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    dataset = ViewsDataset(images.cpu(), view_recipes(model, ready_views))
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=True,
        worker_init_fn=lambda _: torch.set_num_threads(1),
    )
    stream = loader_batches(loader)

    def usual() -> None:
        batches = next(stream)  # one float [0, 1] batch per view, as the method's own views
        train_on(as_method_views(ready_views, [views.to(accelerator.device) for views in batches]))

    @torch.no_grad()
    def views_only() -> None:
        with accelerator.autocast():
            model.make_views(clean)

    return {
        "end_to_end": end_to_end,
        "model_only": lambda: train_on(ready_views),
        "torchvision": usual,
        "views_only": views_only,
    }


def measure(
    steps: dict[str, Callable[[], None]],
    rounds: int,
    batch: int,
    warmup: int = 1,
    synchronize: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Images/s per pipeline: ``warmup`` untimed steps each, then ``rounds`` interleaved timed steps
    (medians).

    ``synchronize`` (``torch.cuda.synchronize`` on a GPU) ends each timed step, so one
    pipeline's queued kernels are not billed to the next.
    """
    times = time_calls(steps, warmup, rounds, synchronize)
    return {name: batch / statistics.median(values) for name, values in times.items()}


def ratios(speeds: dict[str, float]) -> dict[str, float]:
    """(a)/(b), (a)/(c), and the (a)/(b) the view making alone would leave: 1 / (1 + rate(b) /
    rate(views))."""
    return {
        "a_over_b": speeds["end_to_end"] / speeds["model_only"],
        "a_over_c": speeds["end_to_end"] / speeds["torchvision"],
        "predicted_a_over_b": 1 / (1 + speeds["model_only"] / speeds["views_only"]),
    }


def markdown(rows: list[dict[str, Any]], info: dict[str, object], args: argparse.Namespace) -> list[str]:
    lines = [
        "# Pretraining throughput: trainer end to end vs model-only ceiling vs torchvision DataLoader",
        "",
        (
            f"96x96 {DATA} images, batch {args.batch}, {args.threads} torch thread(s) in the training "
            "process, median of "
            f"{args.rounds} interleaved steps after a warm-up. "
            "(a) end to end = the trainer's step with on-device batched "
            "augmentation; (b) model-only = views made beforehand; (c) torchvision = per-sample PIL "
            "transforms in 2 DataLoader workers."
        ),
        "",
        (
            "| method | backbone | (a) end to end img/s | (b) model-only img/s | (c) torchvision img/s "
            "| (a)/(b) | (a)/(c) | view making img/s | (b) with views, predicted (a)/(b) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row['backbone']} | {row['end_to_end']:.1f} | {row['model_only']:.1f} | "
            f"{row['torchvision']:.1f} | "
            f"{row['a_over_b']:.2f} | {row['a_over_c']:.2f} | {row['views_only']:.0f} | "
            f"{row['predicted_a_over_b']:.2f} |"
        )
    lines += [
        "",
        (
            "Targets: (a)/(b) >= 0.8 on the CPU, >= 0.9 on a GPU; (a)/(c) >= 3 on a GPU. The last column is "
            "what (a)/(b) would be if the trainer added nothing but the view making (timed alone, same "
            "batch): 1 / (1 + rate(b) / rate(views)). "
            "Where (a)/(b) is close to it, the gap is the augmentation's cost, not the loop's."
        ),
        "",
        (
            f"Machine: {info['cpu']}, {info['logical_cores']} cores, device {info['device']}; "
            f"torch {info['torch']}; "
            f"{info['date']}. "
            f"1-minute load average at start {info['load_average_1min']:.1f}: "
            "the cores were shared with other jobs, so absolute "
            "numbers are noisy; the ratios, measured interleaved, are the result."
        ),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["simclr"])
    parser.add_argument("--backbones", nargs="+", default=["shufflenetv2", "resnet18"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: the 2 shared cores thrash with 2)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine(device=device_name("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for method in args.methods:
            for backbone in args.backbones:
                config = TrainConfig(  # no monitor: only the step is timed
                    method=method,
                    backbone=backbone,
                    data=DATA,
                    split=SPLIT,
                    image_size=96,
                    epochs=1,
                    batch_size=args.batch,
                    out=str(Path(workdir) / f"{method}-{backbone}"),
                    method_overrides=method_overrides(method, Path(workdir)),
                    monitor_every=0,
                    plots=False,
                )
                speeds = measure(pipelines(build_trainer(config)), args.rounds, args.batch)
                row = {"method": method, "backbone": backbone, **speeds, **ratios(speeds)}
                rows.append(row)
                print(
                    f"{method:8s} {backbone:14s} (a) {speeds['end_to_end']:7.1f}  "
                    f"(b) {speeds['model_only']:7.1f}  "
                    f"(c) {speeds['torchvision']:7.1f} img/s   (a)/(b) {row['a_over_b']:.2f}   "
                    f"(a)/(c) {row['a_over_c']:.2f}",
                    flush=True,
                )
    record = {"machine": info, "options": vars(args), "rows": rows}
    print(f"wrote {write_results(NAME, record, markdown(rows, info, args))}")


if __name__ == "__main__":
    main()
