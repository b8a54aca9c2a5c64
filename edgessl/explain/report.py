"""``explain(run_or_checkpoint, data, kinds)``: the study's explanatory pictures for one representation.

Everything is computed from the checkpoint's frozen representation: features of the
downstream train split (the kNN bank and the linear head's training set) and of the
test split (queries, saliency candidates, confusion matrix). Each picture kind is a
registered function, so adding one is a function and a decorator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from edgessl.checkpoints import LoadedRepresentation
from edgessl.data import ImageDataset
from edgessl.devices import resolve_device
from edgessl.errors import ConfigError
from edgessl.files import atomic_output, output_folder
from edgessl.registry import Registry
from edgessl.runs import RunFolder, pick_checkpoint

ALL = "all"


@dataclass(frozen=True)
class ExplainOptions:
    per_class: int = 2  # saliency: best true positives and worst false negatives per class
    queries_per_class: int = 1  # retrieval: query rows per class
    neighbours: int = 8  # retrieval: neighbours per query
    head_epochs: int = 200  # full-batch Adam steps of the linear head (saliency, confusion)
    head_lr: float = 1e-2
    batch_size: int = 256
    device: str | None = None  # None: CUDA when available
    seed: int = 0


class ExplainContext:
    """The representation, its data and everything derived from them, computed once on demand."""

    def __init__(
        self, loaded: LoadedRepresentation, train: ImageDataset, test: ImageDataset, options: ExplainOptions
    ) -> None:
        self.loaded = loaded
        self.train, self.test, self.options = train, test, options
        self.device = resolve_device(options.device)
        self.model = self.loaded.model.to(self.device).eval()

    @property
    def label(self) -> str:
        meta = self.loaded.metadata
        return f"{meta.get('method')} / {meta.get('backbone')} @ epoch {self.loaded.epoch}"

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        from edgessl.evaluation import extract_features

        return extract_features(self.model, images, self.options.batch_size, self.device).float().cpu()

    @cached_property
    def train_features(self) -> torch.Tensor:
        return self._features(self.train.images)

    @cached_property
    def test_features(self) -> torch.Tensor:
        return self._features(self.test.images)

    @cached_property
    def classifier(self):  # -> saliency.Classifier
        from edgessl.evaluation.linear import Classifier, LinearOptions, train_linear_classifier

        # Full-batch steps: the problem is convex and small, and a few hundred of them at a
        # larger rate cost less than many tiny ones.
        options = LinearOptions(
            epochs=self.options.head_epochs, lr=self.options.head_lr, batch_size=0, seed=self.options.seed
        )
        trained = train_linear_classifier(
            self.train_features, self.train.labels, self.train.num_classes, options
        )
        return Classifier(self.model, trained.head.to(self.device)).eval()

    @cached_property
    def test_probabilities(self) -> torch.Tensor:
        with torch.no_grad():
            logits = self.classifier.head(self.test_features.to(self.device))
        return logits.softmax(1).cpu()


Explainer = Callable[[ExplainContext, Path], list[Path]]
EXPLAINERS: Registry[Explainer] = Registry("explanation kind", hint=f"Or '{ALL}' for every kind.")


@EXPLAINERS.register("saliency")
def explain_saliency(context: ExplainContext, out: Path) -> list[Path]:
    from edgessl.explain.saliency import saliency_figure, select_examples, vanilla_saliency

    per_class = context.options.per_class
    picked = select_examples(context.test_probabilities, context.test.labels, per_class)
    examples = [example for tps, fns in picked.values() for example in tps + fns]
    indices = torch.tensor([example.index for example in examples], dtype=torch.long)
    images = context.test.images[indices]
    inputs = images.to(context.device).float() / 255.0
    targets = torch.tensor([example.label for example in examples], dtype=torch.long)
    maps = vanilla_saliency(context.classifier, inputs, targets)
    figure = saliency_figure(images, maps, examples, context.test.class_names, per_class)
    figure.suptitle(
        f"Saliency (vanilla gradient), {context.label}: best true positives | worst false negatives",
        fontsize=9,
    )
    return [_save(figure, out / "saliency.png")]


@EXPLAINERS.register("retrieval")
def explain_retrieval(context: ExplainContext, out: Path) -> list[Path]:
    from edgessl.explain.retrieval import nearest_neighbours, pick_queries, retrieval_figure

    queries = pick_queries(context.test.labels, context.options.queries_per_class)
    distances, indices = nearest_neighbours(
        context.test_features[queries], context.train_features, context.options.neighbours
    )
    figure = retrieval_figure(
        context.test.images[queries],
        context.test.labels[queries],
        context.train.images,
        context.train.labels,
        distances,
        indices,
        class_names=context.test.class_names,
    )
    figure.suptitle(f"kNN retrieval (Euclidean, distance grows left to right), {context.label}", fontsize=9)
    return [_save(figure, out / "retrieval.png")]


@EXPLAINERS.register("confusion")
def explain_confusion(context: ExplainContext, out: Path) -> list[Path]:
    from edgessl.explain.confusion import confusion_figure, confusion_matrix

    predicted = context.test_probabilities.argmax(1)
    matrix = confusion_matrix(context.test.labels, predicted, context.test.num_classes)
    figure = confusion_figure(matrix, context.test.class_names, f"linear head on {context.label}:")
    return [_save(figure, out / "confusion.png")]


def _save(figure, path: Path) -> Path:
    with atomic_output(path) as tmp:  # Ctrl-C mid-write leaves no torn picture
        figure.savefig(tmp, format="png", dpi=figure.dpi)
    return path


def resolve_kinds(kinds: Sequence[str]) -> list[str]:
    """Validated kind names in registry order; ``all`` expands to every kind."""
    if ALL in kinds:
        return EXPLAINERS.names()
    for kind in kinds:
        EXPLAINERS.get(kind)
    return [kind for kind in EXPLAINERS.names() if kind in kinds]


def default_out(checkpoint: Path) -> Path:
    """``RUN/explain/<checkpoint name>/`` beside the run's checkpoints."""
    return RunFolder.of(checkpoint).explain_dir / checkpoint.stem


def explain(
    run_or_checkpoint: str | Path,
    data: str,
    kinds: Sequence[str] = (ALL,),
    *,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    image_size: int | None = None,
    epoch: int | None = None,
    options: ExplainOptions = ExplainOptions(),
) -> list[Path]:
    """Write the requested pictures (PNG) for the representation and return their paths.

    ``data`` must have labelled ``train`` and ``test`` splits; images are resized to the
    checkpoint's training size unless ``image_size`` says otherwise.
    """
    from edgessl.checkpoints import load_representation
    from edgessl.data import load_labelled_splits

    names = resolve_kinds(kinds)
    resolve_device(options.device)
    checkpoint = pick_checkpoint(run_or_checkpoint, epoch)
    loaded = load_representation(checkpoint)
    size = image_size or int(loaded.metadata["image_size"])
    train, test = load_labelled_splits(data, data_root, size, purpose="explain")
    if options.neighbours > len(train):
        raise ConfigError(
            f"--neighbours {options.neighbours} is more than the {len(train)} training images "
            "to retrieve from"
        )
    with output_folder(out if out is not None else default_out(checkpoint)) as target:
        context = ExplainContext(loaded, train, test, options)
        written: list[Path] = []
        try:
            for name in names:
                written += EXPLAINERS.get(name)(context, target)
        except BaseException:  # an error, a full disk or Ctrl-C: the folder is left as it was found
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return written
