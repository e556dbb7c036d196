"""Wilson intervals, Fisher's exact test and Cohen's kappa against published values."""

import pytest

from parley.appliance.platform.testing.stats import Rate, cohens_kappa, fisher_exact, runs_to_decide, wilson_interval


@pytest.mark.parametrize(("passed", "total", "low", "high"), [
    (0, 3, 0.0, 0.5615),      # a clean 0/3 is not "0 %": the interval reaches past a half
    (3, 3, 0.4385, 1.0),
    (8, 10, 0.4902, 0.9433),  # Newcombe (1998), table I
    (81, 263, 0.2553, 0.3662),
])
def test_wilson_interval_matches_published_values(passed, total, low, high):
    assert wilson_interval(passed, total) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_refuses_impossible_counts_and_is_uninformative_on_nothing():
    with pytest.raises(ValueError):
        wilson_interval(4, 3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert str(Rate(2, 3)).startswith("67% [")


@pytest.mark.parametrize(("table", "p"), [
    ((8, 10, 1, 6), 0.0349650),    # SciPy's documented example [[8, 2], [1, 5]]
    ((3, 4, 1, 4), 0.4857143),     # Fisher's lady tasting tea
    ((10, 10, 0, 10), 1.0825e-5),  # 10/10 against 0/10: 2 / C(20, 10)
    ((3, 3, 3, 3), 1.0),
])
def test_fisher_exact_matches_published_values(table, p):
    assert fisher_exact(*table) == pytest.approx(p, rel=1e-4)


def test_fisher_exact_is_symmetric_and_rejects_bad_counts():
    assert fisher_exact(9, 10, 2, 10) == pytest.approx(fisher_exact(2, 10, 9, 10))
    with pytest.raises(ValueError):
        fisher_exact(5, 4, 1, 4)


def test_cohens_kappa_matches_the_textbook_example():
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert cohens_kappa(pairs) == pytest.approx(0.4)
    assert cohens_kappa([("pass", "pass"), ("fail", "fail")]) == 1.0


def test_runs_to_decide_says_how_many_more_runs_settle_a_borderline_rate():
    extra = runs_to_decide(9, 10, 0.7)
    assert extra is not None and extra > 0
    n = 10 + extra
    low, _ = wilson_interval(round(0.9 * n), n)
    assert low >= 0.7 and wilson_interval(round(0.9 * (n - 1)), n - 1)[0] < 0.7
    assert runs_to_decide(7, 10, 0.7) is None
