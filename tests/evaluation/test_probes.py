"""Linear probe and fine-tuning learn what is learnable and nothing else."""

from __future__ import annotations

import pytest
import torch

from edgessl.errors import ConfigError
from edgessl.evaluation import LinearOptions, evaluate_representation, fit_linear_probe


def clustered_features(n: int, num_classes: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs around well-separated random centres, at a large raw scale (x100)."""
    generator = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(num_classes).repeat(n // num_classes)
    return 100 * (centres[labels] + torch.randn(len(labels), dim, generator=generator)), labels


def test_linear_probe_learns_linearly_separable_features() -> None:
    x_train, y_train = clustered_features(300, 5, 16, seed=1)
    x_test, y_test = clustered_features(100, 5, 16, seed=2)
    result = fit_linear_probe(
        x_train, y_train, x_test, y_test, 5, LinearOptions(epochs=15, batch_size=64, lr=1e-2)
    )
    assert result.accuracy >= 0.98
    details = result.details
    assert len(details["curve"]) == 15 and details["max"] == max(details["curve"]) == result.accuracy
    assert details["final"] == details["curve"][-1] and 1 <= details["best_epoch"] <= 15
    assert result.accuracy == pytest.approx(float((result.predictions == y_test).float().mean()))


def test_linear_probe_fails_on_random_labels() -> None:
    x_train, _ = clustered_features(300, 5, 16, seed=1)
    x_test, y_test = clustered_features(100, 5, 16, seed=2)
    random_labels = torch.randint(0, 5, (300,), generator=torch.Generator().manual_seed(3))
    result = fit_linear_probe(
        x_train, random_labels, x_test, y_test, 5, LinearOptions(epochs=15, batch_size=0)
    )
    assert result.details["final"] < 0.45  # chance is 0.2; separable features do not help wrong labels


def test_linear_protocol_is_deterministic_and_validates_options(tiny_splits) -> None:
    train, test, model = tiny_splits
    first = evaluate_representation(model, train, test, "linear", device="cpu", epochs=3)
    again = evaluate_representation(model, train, test, "linear", device="cpu", epochs=3)
    assert first.details["curve"] == again.details["curve"]
    with pytest.raises(ConfigError, match="epoch"):
        evaluate_representation(model, train, test, "linear", epoch=3)


def test_finetune_improves_on_a_tiny_separable_set_and_leaves_the_model_alone(tiny_splits) -> None:
    train, test, model = tiny_splits
    before = {name: value.clone() for name, value in model.state_dict().items()}
    result = evaluate_representation(
        model, train, test, "finetune", device="cpu", epochs=4, batch_size=16, lr=1e-2
    )
    curve = result.details["curve"]
    assert len(curve) == 4 and result.accuracy == max(curve)
    assert result.accuracy >= 0.9 and result.accuracy > curve[0] - 1e-9  # chance is 0.25
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_light_augmentation_only_crops_and_flips() -> None:
    from edgessl.evaluation.finetune import light_augment

    images = (torch.rand(32, 3, 8, 8) * 255).to(torch.uint8)
    unit = images.float() / 255
    out = light_augment(1.0)(images, generator=torch.Generator().manual_seed(0))
    same = (out - unit).abs().flatten(1).amax(1) < 1e-5
    mirrored = (out - unit.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert bool((same | mirrored).all()) and 4 < int(mirrored.sum()) < 28  # colours untouched
    cropped = light_augment(0.5)(images, generator=torch.Generator().manual_seed(0))
    assert cropped.shape == unit.shape and not torch.allclose(cropped, out)


def test_knn_and_linear_share_one_feature_pass(tiny_splits) -> None:
    from edgessl.evaluation.features import FeatureCache

    train, test, model = tiny_splits
    seen: list[int] = []
    model.register_forward_hook(lambda _module, inputs, _output: seen.append(len(inputs[0])))
    cache = FeatureCache(model, "cpu", batch_size=24)
    evaluate_representation(model, train, test, "knn", features=cache, k=3)
    evaluate_representation(model, train, test, "linear", features=cache, epochs=1)
    assert seen == [24, 24, 16, 24, 16]  # 64 train + 40 test images, each seen once
