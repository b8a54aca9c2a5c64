"""Each loss against the same quantity computed a second, obvious way."""

from __future__ import annotations

import math

import kornia
import pytest
import torch
from torch.nn import functional as F

from edgessl.methods.losses import BarlowTwinsLoss, InfoNCELoss, VICRegLoss, normalized_regression_loss
from edgessl.methods.splitbrain import ab_bin_centres, quantize_ab, quantize_l


def cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


def nt_xent_by_loops(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    """SimCLR eq. 1 literally: l(i, j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t), averaged over 2N
    anchors."""
    z = torch.cat([a, b]).double()
    n = len(a)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(cos(z[i], z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(cos(z[i], z[j]) / t) / denominator)
    return total / (2 * n)


def moco_by_loops(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    """He et al. 2020 eq. 1 per query: -log exp(q.k+/t) / (exp(q.k+/t) + sum over queue exp(q.k-/t))."""
    total = 0.0
    for i in range(len(q)):
        positive = math.exp(cos(q[i].double(), k[i].double()) / t)
        negatives = sum(math.exp(cos(q[i].double(), neg.double()) / t) for neg in queue)
        total += -math.log(positive / (positive + negatives))
    return total / len(q)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_explicit_loops(temperature: float) -> None:
    torch.manual_seed(0)
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    got = InfoNCELoss(temperature)(a, b)
    assert got.item() == pytest.approx(nt_xent_by_loops(a, b, temperature), rel=1e-5)


def test_moco_infonce_matches_explicit_loops() -> None:
    torch.manual_seed(1)
    q, k, queue = torch.randn(4, 6), torch.randn(4, 6), torch.randn(9, 6)
    got = InfoNCELoss(0.2)(q, k, queue)
    assert got.item() == pytest.approx(moco_by_loops(q, k, queue, 0.2), rel=1e-5)


def test_nt_xent_is_low_for_matching_views_and_rejects_bad_shapes() -> None:
    a = torch.eye(4)
    assert InfoNCELoss(0.1)(a, a).item() < InfoNCELoss(0.1)(a, a.roll(1, dims=0)).item()
    with pytest.raises(ValueError):
        InfoNCELoss(0.1)(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError):
        InfoNCELoss(0.0)


def test_byol_loss_is_two_minus_two_cosine_and_target_gets_no_gradient() -> None:
    torch.manual_seed(2)
    p, z = torch.randn(6, 5, requires_grad=True), torch.randn(6, 5, requires_grad=True)
    expected = sum(2 - 2 * cos(p[i].detach(), z[i].detach()) for i in range(6)) / 6
    loss = normalized_regression_loss(p, z)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the squared distance of the unit vectors is the same number
    assert loss.item() == pytest.approx(
        ((F.normalize(p, dim=1) - F.normalize(z, dim=1)) ** 2).sum(1).mean().item(), rel=1e-5
    )
    loss.backward()
    assert p.grad is not None and p.grad.abs().sum() > 0 and z.grad is None


def test_ab_bins_are_the_cells_hit_by_srgb() -> None:
    centres = ab_bin_centres()
    # 261 cells (see splitbrain's docstring for why not Zhang et al.'s 313), same extent as theirs.
    assert len(centres) == 261
    assert centres.min(0).values.tolist() == [-90.0, -110.0] and centres.max(0).values.tolist() == [
        100.0,
        90.0,
    ]
    assert torch.equal(centres, (centres / 10).round() * 10)
    # pure sRGB primaries fall in a kept cell
    lab = kornia.color.rgb_to_lab(torch.eye(3).view(3, 3, 1, 1))[:, 1:, 0, 0]
    cells = {tuple(c) for c in centres.tolist()}
    assert all(tuple(((ab / 10).round() * 10).tolist()) in cells for ab in lab)


def test_splitbrain_quantisation_matches_manual_binning() -> None:
    centres = ab_bin_centres()
    ab = torch.tensor([[3.0, -4.0], [47.0, 12.0], [-86.0, 71.0], [60.0, -104.0]]).T.reshape(1, 2, 2, 2)
    got = quantize_ab(ab, centres).flatten().tolist()
    for value, index in zip(ab.reshape(2, -1).T, got, strict=True):
        # by hand: the closest centre by squared distance, scanning all of them
        distances = [float(((value - c) ** 2).sum()) for c in centres]
        assert index == distances.index(min(distances))
    # in-gamut values land in their own rounded cell
    assert centres[got[0]].tolist() == [0.0, -0.0] and centres[got[1]].tolist() == [50.0, 10.0]
    lightness = torch.tensor([0.0, 1.99, 2.0, 55.3, 99.9, 100.0]).view(1, 1, 1, 6)
    assert quantize_l(lightness).flatten().tolist() == [0, 0, 1, 27, 49, 49]


def test_splitbrain_cross_entropy_matches_manual_quantisation() -> None:
    from edgessl.methods import build_method

    torch.manual_seed(3)
    method = build_method("splitbrain", "squeezenet", 32, (0.5,) * 3, (0.25,) * 3)
    lab = method.make_views(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    # targets by hand: average each 4x4 block in Lab units, then bin
    blocks = lab.unfold(2, 4, 4).unfold(3, 4, 4).mean(dim=(-1, -2))
    lightness, ab = (blocks[:, 0] + 1) * 50, blocks[:, 1:] * 110
    ab_target, l_target = method.targets(lab)
    assert torch.equal(l_target, (lightness / 2).floor().clamp(0, 49).long())
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 1, 2)
    by_hand = ((flat - ab_bin_centres()) ** 2).sum(-1).argmin(1).view(2, 8, 8)
    assert torch.equal(ab_target, by_hand)
    # the loss is the sum of the two cross-entropies on those targets; logits: each hypercolumn
    # level's 1x1 conv upsampled to the target grid, summed
    from edgessl.methods.splitbrain import pyramid_maps

    def logits(classifier, net, x):
        maps = pyramid_maps(net, x, method.config.hypercolumn_levels)
        return sum(F.interpolate(c(m), size=(8, 8), mode="bilinear") for c, m in zip(classifier.levels, maps))

    ab_logits = logits(method.ab_classifier, method.l_net, lab[:, :1])
    l_logits = logits(method.l_classifier, method.ab_net, lab[:, 1:])
    log_ab, log_l = ab_logits.log_softmax(1), l_logits.log_softmax(1)
    manual = -log_ab.gather(1, by_hand[:, None]).mean() - log_l.gather(1, l_target[:, None]).mean()
    assert method.loss(lab).item() == pytest.approx(manual.item(), rel=1e-5)


def test_losses_run_in_float32_under_bf16_autocast() -> None:
    torch.manual_seed(4)
    a, b = torch.randn(6, 8).bfloat16(), torch.randn(6, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nt_xent, byol = InfoNCELoss(0.1)(a, b), normalized_regression_loss(a, b)
    assert nt_xent.dtype == byol.dtype == torch.float32
    assert nt_xent.item() == pytest.approx(nt_xent_by_loops(a.float(), b.float(), 0.1), rel=1e-5)
    assert byol.item() == pytest.approx(normalized_regression_loss(a.float(), b.float()).item(), rel=1e-6)


def columns(z: torch.Tensor) -> list[list[float]]:
    return [[float(z[k, j]) for k in range(z.shape[0])] for j in range(z.shape[1])]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def barlow_twins_by_loops(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Zbontar et al. 2021 eq. 1-2 literally: each dimension standardised over the batch, C_ij = mean_b of
    the products; returns (sum_i (1 - C_ii)^2, sum_{i != j} C_ij^2)."""

    def standardised(column: list[float]) -> list[float]:
        m = mean(column)
        std = math.sqrt(mean([(x - m) ** 2 for x in column]) + 1e-5)  # biased, BatchNorm's eps
        return [(x - m) / std for x in column]

    za, zb = [standardised(c) for c in columns(a)], [standardised(c) for c in columns(b)]
    d, n = len(za), len(za[0])
    c = [[sum(za[i][k] * zb[j][k] for k in range(n)) / n for j in range(d)] for i in range(d)]
    on = sum((1 - c[i][i]) ** 2 for i in range(d))
    off = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    return on, off


def vicreg_by_loops(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-4) -> tuple[float, float, float]:
    """Bardes et al. 2022 eq. 1-5 term by term, normalised as their released code: (invariance, variance,
    covariance)."""
    n, d = a.shape
    invariance = sum(float(a[k, j] - b[k, j]) ** 2 for k in range(n) for j in range(d)) / (n * d)

    def variance(z: torch.Tensor) -> float:  # eq. 1-2, gamma = 1, unbiased variance
        hinge = []
        for column in columns(z):
            m = mean(column)
            std = math.sqrt(sum((x - m) ** 2 for x in column) / (n - 1) + eps)
            hinge.append(max(0.0, 1 - std))
        return mean(hinge)

    def covariance(z: torch.Tensor) -> float:  # eq. 3-4
        cols = columns(z)
        means = [mean(c) for c in cols]
        total = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    cov = sum((cols[i][k] - means[i]) * (cols[j][k] - means[j]) for k in range(n)) / (n - 1)
                    total += cov**2
        return total / d

    return invariance, (variance(a) + variance(b)) / 2, covariance(a) + covariance(b)


def redundancy_pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated views whose dimensions have stds from 0.1 to 3 (VICReg's hinge active on some, not all)."""
    torch.manual_seed(seed)
    a = torch.randn(9, 6) * torch.linspace(0.1, 3.0, 6) + torch.randn(6)
    return a, 0.7 * a + 0.5 * torch.randn(9, 6)


def test_barlow_twins_loss_matches_explicit_loops() -> None:
    a, b = (t.requires_grad_() for t in redundancy_pair(5))
    on, off = barlow_twins_by_loops(a.detach(), b.detach())
    got = BarlowTwinsLoss(5e-3)(a, b)
    assert got.metrics["on_diagonal"].item() == pytest.approx(on, rel=1e-5)
    assert got.metrics["off_diagonal"].item() == pytest.approx(off, rel=1e-5)
    assert got.loss.item() == pytest.approx(on + 5e-3 * off, rel=1e-5)
    assert not any(m.requires_grad for m in got.metrics.values())  # diagnostics are detached
    got.loss.backward()
    assert a.grad is not None and b.grad is not None and a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_vicreg_loss_matches_explicit_loops() -> None:
    a, b = redundancy_pair(6)
    invariance, variance, covariance = vicreg_by_loops(a, b)
    assert 0 < variance < 1  # the hinge is active on the narrow dimensions only
    got = VICRegLoss(25.0, 25.0, 1.0, 1e-4)(a, b)
    for name, expected in (("invariance", invariance), ("variance", variance), ("covariance", covariance)):
        assert got.metrics[name].item() == pytest.approx(expected, rel=1e-5), name
    assert got.loss.item() == pytest.approx(25 * invariance + 25 * variance + covariance, rel=1e-5)


def test_redundancy_losses_vanish_at_their_optimum_and_reject_bad_input() -> None:
    # Columns of a Hadamard matrix: mean 0, variance 1 (biased; 4/3 unbiased), mutually orthogonal.
    z = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    assert BarlowTwinsLoss(5e-3)(z, z).loss.item() == pytest.approx(3 * (1e-5 / (1 + 1e-5)) ** 2, abs=1e-9)
    assert VICRegLoss(25.0, 25.0, 1.0, 1e-4)(z, z).loss.item() == 0.0
    assert VICRegLoss(25.0, 25.0, 1.0, 1e-4)(z, z.flip(0)).metrics["invariance"].item() > 0
    for loss in (BarlowTwinsLoss(5e-3), VICRegLoss(25.0, 25.0, 1.0, 1e-4)):
        with pytest.raises(ValueError, match="N >= 2"):
            loss(torch.randn(1, 3), torch.randn(1, 3))
        with pytest.raises(ValueError, match="same shape"):
            loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError):
        VICRegLoss(25.0, -1.0, 1.0, 1e-4)


def test_redundancy_losses_run_in_float32_under_bf16_autocast() -> None:
    a, b = (t.bfloat16() for t in redundancy_pair(7))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        barlow, vicreg = BarlowTwinsLoss(5e-3)(a, b), VICRegLoss(25.0, 25.0, 1.0, 1e-4)(a, b)
    assert barlow.loss.dtype == vicreg.loss.dtype == torch.float32
    on, off = barlow_twins_by_loops(a.float(), b.float())
    assert barlow.loss.item() == pytest.approx(on + 5e-3 * off, rel=1e-5)
    invariance, variance, covariance = vicreg_by_loops(a.float(), b.float())
    assert vicreg.loss.item() == pytest.approx(25 * invariance + 25 * variance + covariance, rel=1e-5)


def test_redundancy_losses_match_lightly() -> None:
    """lightly is not a dependency: this runs where it is installed (its loss module needs only torch)."""
    lightly_loss = pytest.importorskip("lightly.loss")
    for seed in range(3):
        a, b = redundancy_pair(seed)
        assert BarlowTwinsLoss(5e-3)(a, b).loss.item() == pytest.approx(
            lightly_loss.BarlowTwinsLoss(lambda_param=5e-3)(a, b).item(), rel=1e-5
        )
        assert VICRegLoss(25.0, 25.0, 1.0, 1e-4)(a, b).loss.item() == pytest.approx(
            lightly_loss.VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4)(a, b).item(),
            rel=1e-5,
        )
