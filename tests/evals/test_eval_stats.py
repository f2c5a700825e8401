"""pass@k and pass^k against hand-computed values; per-cell aggregation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilothouse.evals import SampleRecord, mean_pass_hat_k, pass_at_k, pass_hat_k, summarize


def test_pass_hat_k_hand_computed() -> None:
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)  # C(2,2)/C(4,2)
    assert pass_hat_k(5, 3, 2) == pytest.approx(3 / 10)  # C(3,2)/C(5,2)
    assert pass_hat_k(20, 10, 3) == pytest.approx(120 / 1140)  # C(10,3)/C(20,3)
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(4, 3, 4) == 0.0
    assert pass_hat_k(10, 7, 1) == pytest.approx(0.7)


def test_mean_over_tasks() -> None:
    # Tasks with (n, c) = (4, 2), (4, 4), (4, 0): (1/6 + 1 + 0) / 3 = 7/18.
    assert mean_pass_hat_k([(4, 2), (4, 4), (4, 0)], 2) == pytest.approx(7 / 18)
    assert mean_pass_hat_k([], 1) == 0.0


def test_pass_at_k_hand_computed() -> None:
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than 3 failures: every 3-draw has a pass
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError):
        pass_hat_k(3, 1, 4)


@given(st.integers(1, 30).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_hat_1_is_the_success_rate(nc: tuple[int, int]) -> None:
    n, c = nc
    assert pass_hat_k(n, c, 1) == pytest.approx(c / n)
    for k in range(1, n + 1):
        assert pass_hat_k(n, c, k) <= pass_at_k(n, c, k) + 1e-12
        assert pass_hat_k(n, c, k) == pytest.approx(math.comb(c, k) / math.comb(n, k))


def _s(scenario: str, ok: bool, failure: str | None = None) -> SampleRecord:
    return SampleRecord(scenario, "m", 0, ok, failure, input_tokens=3, output_tokens=2, latency=1.0)


def test_summarize_cell() -> None:
    samples = [_s("a", True), _s("a", True), _s("a", False, "assertion"), _s("a", True)]
    samples += [_s("b", False, "budget_stop")] * 2 + [_s("b", True)] * 2
    cell = summarize(samples)
    assert (cell.n, cell.passed) == (8, 5)
    assert cell.rate == pytest.approx(5 / 8)
    # a: (4, 3), b: (4, 2); pass^2 = (C(3,2)/6 + C(2,2)/6) / 2 = (0.5 + 1/6) / 2
    assert cell.pass_hat[2] == pytest.approx((0.5 + 1 / 6) / 2)
    assert cell.pass_hat[4] == 0.0
    assert set(cell.pass_hat) == {1, 2, 4}
    assert cell.failures == {"assertion": 1, "budget_stop": 2}
    assert cell.input_tokens == 24 and cell.output_tokens == 16
    assert cell.cost is None
