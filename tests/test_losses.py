import math

import pytest
import torch

from medmap.losses import (
    cauchy_log_similarity,
    cosine_log_similarity,
    info_nce_loss,
    make_loss,
)


def hand_info_nce(points: list[list[float]], similarity, exaggeration=1.0) -> float:
    """InfoNCE written out with loops: views 0..N-1 pair with N..2N-1."""
    count = len(points) // 2
    total = 0.0
    for i, anchor in enumerate(points):
        positive = i + count if i < count else i - count
        denominator = sum(similarity(anchor, points[k]) for k in range(len(points)) if k != i)
        attraction = exaggeration * math.log(similarity(anchor, points[positive]))
        total += -(attraction - math.log(denominator))
    return total / len(points)


def cauchy(x, y):
    return 1.0 / (1.0 + sum((a - b) ** 2 for a, b in zip(x, y)))


def cosine_exp(x, y, temperature=0.5):
    dot = sum(a * b for a, b in zip(x, y))
    norm = math.sqrt(sum(a * a for a in x)) * math.sqrt(sum(b * b for b in y))
    return math.exp(dot / norm / temperature)


def test_cauchy_loss_matches_hand_computation_on_a_tiny_2d_batch():
    # Two images, two views each: view pairs (0,0)-(1,0) and (0,3)-(0,4).
    view_a = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    view_b = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    # Anchor (0,0): positive q = 1/2, others q(0,3)=1/10, q(0,4)=1/17.
    # Anchor (1,0): positive 1/2, others 1/(1+10)=1/11, 1/(1+17)=1/18; and so on.
    expected = hand_info_nce([[0, 0], [0, 3], [1, 0], [0, 4]], cauchy)
    loss = info_nce_loss(view_a, view_b, cauchy_log_similarity)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    first_anchor = -math.log(0.5 / (0.5 + 1 / 10 + 1 / 17))
    assert first_anchor < expected * 4  # the first term is one of four positive terms


def test_exaggeration_weighs_the_attraction_term():
    points = [[0, 0], [0, 3], [1, 0], [0, 4]]
    view_a, view_b = (
        torch.tensor(points[:2], dtype=torch.float32),
        torch.tensor(points[2:], dtype=torch.float32),
    )
    plain = make_loss("cauchy")(view_a, view_b).item()
    doubled = make_loss("cauchy", exaggeration=2.0)(view_a, view_b).item()
    assert doubled == pytest.approx(hand_info_nce(points, cauchy, exaggeration=2.0), rel=1e-6)
    # Every positive here has q = 1/2 (distance 1), so each anchor's loss grows by log 2.
    assert doubled - plain == pytest.approx(math.log(2), rel=1e-6)


def test_cosine_loss_matches_hand_computation_with_temperature():
    points = [
        [1.0, 0.0, 0.0],
        [0.0, 2.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [0.5, 1.5, 0.2],
        [0.1, 0.0, 3.0],
    ]
    tensor = torch.tensor(points)
    loss = make_loss("cosine", temperature=0.5)(tensor[:3], tensor[3:])
    assert loss.item() == pytest.approx(hand_info_nce(points, cosine_exp), rel=1e-5)
    other = make_loss("cosine", temperature=0.1)(tensor[:3], tensor[3:])
    assert other.item() != pytest.approx(loss.item(), rel=1e-3)


def test_loss_is_lower_when_positives_are_close():
    torch.manual_seed(0)
    anchors = torch.randn(16, 2) * 5
    close = info_nce_loss(anchors, anchors + 0.01, cauchy_log_similarity)
    far = info_nce_loss(anchors, torch.randn(16, 2) * 5, cauchy_log_similarity)
    assert close < far


def test_self_similarity_is_excluded_from_the_denominator():
    # With identical views the self term would otherwise add exp(log q(i,i)) = 1 to each row.
    view = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    loss = info_nce_loss(view, view.clone(), cauchy_log_similarity)
    # anchor: positive q=1, the two other views are at distance 10 -> q = 1/101 each.
    expected = math.log(1 + 2 / 101)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_gradients_are_finite_for_coincident_points():
    z = torch.zeros(4, 2, requires_grad=True)
    loss = info_nce_loss(z[:2], z[2:], cauchy_log_similarity)
    loss.backward()
    assert torch.isfinite(z.grad).all()


def test_cauchy_similarity_matrix_on_known_points():
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    log_q = cauchy_log_similarity(z)
    assert torch.allclose(log_q.exp(), torch.tensor([[1.0, 1 / 26], [1 / 26, 1.0]]))
    cos = cosine_log_similarity(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), temperature=0.5)
    assert torch.allclose(cos, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="cauchy"):
        make_loss("euclid")


def test_loss_stays_float32_under_bf16_autocast():
    """2-D coordinates of size ~50: in bf16 the matmul behind the distances would round away
    the distance between an image's two views (8 bits of mantissa)."""
    torch.manual_seed(0)
    anchors = torch.randn(64, 2) * 50
    view_a, view_b = anchors, anchors + 0.05 * torch.randn(64, 2)
    loss = make_loss("cauchy")
    exact = loss(view_a, view_b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = loss(view_a, view_b)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, exact)
