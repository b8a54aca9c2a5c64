"""Each loss against the same quantity computed a second, obvious way."""

from __future__ import annotations

import math

import kornia
import pytest
import torch
from torch.nn import functional as F

from edgessl.methods.losses import InfoNCELoss, normalized_regression_loss
from edgessl.methods.splitbrain import ab_bin_centres, quantize_ab, quantize_l


def cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


def nt_xent_by_loops(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    """SimCLR eq. 1 literally: l(i, j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t), averaged over 2N anchors."""
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
    # the loss is the sum of the two cross-entropies on those targets
    ab_logits = F.interpolate(
        method.ab_classifier(method.l_net.forward_spatial(lab[:, :1])), size=(8, 8), mode="bilinear"
    )
    l_logits = F.interpolate(
        method.l_classifier(method.ab_net.forward_spatial(lab[:, 1:])), size=(8, 8), mode="bilinear"
    )
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
