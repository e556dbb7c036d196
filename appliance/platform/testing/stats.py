"""The statistics behind pass rates, comparisons and the go-live gate, for the small counts agent
tests give (a handful of runs per test): Wilson score intervals, Fisher's exact test, Cohen's kappa.

Plain Python (``math``): no SciPy on the appliance. Checked against published values in
tests/test_agent_stats.py.
"""

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054
"""The two-sided 95 % quantile of the standard normal."""


@dataclass(frozen=True)
class Rate:
    """``passed`` of ``total``, with its 95 % Wilson score interval."""

    passed: int
    total: int

    @property
    def value(self):
        return self.passed / self.total if self.total else float("nan")

    @property
    def interval(self):
        return wilson_interval(self.passed, self.total)

    def __str__(self):
        if not self.total:
            return "–"
        low, high = self.interval
        return f"{self.value:.0%} [{low:.0%}, {high:.0%}] ({self.passed}/{self.total})"


def wilson_interval(successes, total, z=Z_95):
    """The Wilson score interval of a binomial proportion: unlike the normal approximation it stays
    inside [0, 1] and is honest at 0/3 or 3/3 (3/3 gives [0.44, 1.0], not [1.0, 1.0])."""
    if total <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= total:
        raise ValueError(f"{successes} successes out of {total}")
    p = successes / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def fisher_exact(a_passed, a_total, b_passed, b_total):
    """Two-sided p-value of Fisher's exact test on the 2x2 table (passed/failed x A/B): the sum of
    the probabilities of every table with the same margins that is no more likely than this one."""
    for passed, total in ((a_passed, a_total), (b_passed, b_total)):
        if not 0 <= passed <= total:
            raise ValueError(f"{passed} passed out of {total}")
    passed, n = a_passed + b_passed, a_total + b_total
    if n == 0:
        return 1.0
    low, high = max(0, passed - b_total), min(passed, a_total)

    def log_probability(k):
        return (_log_comb(a_total, k) + _log_comb(b_total, passed - k) - _log_comb(n, passed))

    observed = log_probability(a_passed)
    total = 0.0
    for k in range(low, high + 1):
        lp = log_probability(k)
        if lp <= observed + 1e-7:
            total += math.exp(lp)
    return min(1.0, total)


def _log_comb(n, k):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def cohens_kappa(pairs):
    """Agreement between two raters beyond chance, over ``pairs`` of labels (any hashable)."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("Cohen's kappa needs at least one pair of labels")
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    labels = {a for a, _ in pairs} | {b for _, b in pairs}
    expected = sum((sum(a == label for a, _ in pairs) / n) * (sum(b == label for _, b in pairs) / n) for label in labels)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def runs_to_decide(passed, total, threshold, *, limit=1000):
    """How many more runs, all going the way they have gone so far (same pass rate), would take the
    Wilson interval off ``threshold``: the "inconclusive" gate's answer to "how many more?".
    ``None`` when no number up to ``limit`` would (the rate sits on the threshold)."""
    rate = passed / total if total else 0.5
    for extra in range(1, limit + 1):
        n = total + extra
        low, high = wilson_interval(round(rate * n), n)
        if low >= threshold or high < threshold:
            return extra
    return None
