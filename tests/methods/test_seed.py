"""SEED: its loss against the released implementation's formula, its queue, its frozen teacher."""

from __future__ import annotations

import torch
from teachers import teacher_config

from edgessl.methods import build_method
from edgessl.methods.seed import SEEDConfig, seed_loss

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def released_seed_loss(s_emb, t_emb, queue_dk, t, temp):
    """jacobswan1/SEED ``seed/builder.py`` forward + ``tools/utils.py`` soft_cross_entropy, re-expressed:
    the queue is (dim, K) there, the logits are einsums, and the loss sums over the batch then divides
    by N."""
    s_emb = torch.nn.functional.normalize(s_emb, dim=1)
    t_emb = torch.nn.functional.normalize(t_emb, dim=1)
    logit_stu = torch.einsum("nc,ck->nk", s_emb, queue_dk)
    logit_tea = torch.einsum("nc,ck->nk", t_emb, queue_dk)
    logit_s_p = torch.einsum("nc,nc->n", s_emb, t_emb).unsqueeze(-1)
    logit_t_p = torch.einsum("nc,nc->n", t_emb, t_emb).unsqueeze(-1)
    logit_stu = torch.cat([logit_s_p, logit_stu], dim=1) / t
    logit_tea = torch.nn.functional.softmax(torch.cat([logit_t_p, logit_tea], dim=1) / temp, dim=1)
    return -(logit_tea * torch.nn.functional.log_softmax(logit_stu, 1)).sum() / logit_stu.shape[0]


def test_seed_loss_equals_the_released_implementation_on_fixed_tensors() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(8, 16, generator=generator, dtype=torch.float64)
    teacher = torch.randn(8, 16, generator=generator, dtype=torch.float64)
    queue = torch.nn.functional.normalize(
        torch.randn(32, 16, generator=generator, dtype=torch.float64), dim=1
    )
    for t, temp in ((0.2, 1e-4), (0.2, 0.01), (0.07, 0.07)):
        ours = seed_loss(student, teacher, queue, t, temp)
        theirs = released_seed_loss(student, teacher, queue.T, t, temp)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    # the gradient too: the student is pulled by the teacher's distribution, not by a one-hot label
    student.requires_grad_(True)
    seed_loss(student, teacher, queue, 0.2, 0.01).backward()
    grad = student.grad.clone()
    student.grad = None
    released_seed_loss(student, teacher, queue.T, 0.2, 0.01).backward()
    torch.testing.assert_close(grad, student.grad, rtol=1e-10, atol=1e-12)


def test_seed_step_enqueues_the_teacher_embeddings_and_never_trains_the_teacher() -> None:
    torch.manual_seed(0)
    config = SEEDConfig(teacher=teacher_config(), queue_size=12, hidden_dim=16)
    method = build_method("seed", "squeezenet", 32, MEAN, STD, config).train()
    assert not method.teacher.training and not any(p.requires_grad for p in method.teacher.parameters())
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(3)
    out = method(images)
    out.loss.backward()
    # the queue's first 5 rows are the teacher's normalised embeddings of the same augmented view
    torch.manual_seed(3)
    view = method.make_views(images)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(method.teacher(view), dim=1)
    torch.testing.assert_close(method.queue[:5], expected, rtol=1e-5, atol=1e-6)
    assert int(method.queue_pointer) == 5
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is not None for p in method.head.parameters())
    after = method.teacher.state_dict()
    assert all(torch.equal(teacher_before[k], after[k]) for k in teacher_before)  # BN statistics included
    assert -1.0 <= float(out.metrics["student_teacher_cosine"]) <= 1.0


def test_seed_student_head_maps_to_the_teacher_width() -> None:
    config = SEEDConfig(teacher=teacher_config(), queue_size=8)
    method = build_method("seed", "squeezenet", 32, MEAN, STD, config)
    # SEED's MLP
    assert method.head[0].in_features == method.encoder.feature_dim == method.head[0].out_features
    assert method.head[-1].out_features == method.teacher.feature_dim == method.queue.shape[1]
