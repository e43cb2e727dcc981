"""The benchmark's "no loss of accuracy" verdict: Welch's difference of per-seed AbsRel and its
one-sided upper bound, checked against scipy's own Welch test."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lsmdepth_ros.benchmarks.accuracy import NO_LOSS_MARGIN, compare, format_accuracy

LITE = [0.1252, 0.1271, 0.1254, 0.1292, 0.1270, 0.1326, 0.1283, 0.1360, 0.1251, 0.1269]
LSM = [0.1265, 0.1332, 0.1275, 0.1281, 0.1303, 0.1315, 0.1386, 0.1277, 0.1285, 0.1280]


def test_welch_difference_matches_scipy():
    c = compare(LSM, LITE[:7])
    ref = stats.ttest_ind(LSM, LITE[:7], equal_var=False)
    assert c.diff / c.se == pytest.approx(ref.statistic, rel=1e-9)
    assert c.diff == pytest.approx(np.mean(LSM) - np.mean(LITE[:7]))
    # the 95 % one-sided bound is where a one-sided test of "diff <= bound" has p = 0.05
    assert stats.t.sf((c.diff - c.upper) / c.se, c.df) == pytest.approx(0.95)


def test_verdict_follows_the_margin():
    shifted = [v + NO_LOSS_MARGIN for v in LITE]    # 0.005 worse on every seed
    assert not compare(shifted, LITE).no_loss
    assert compare(LITE, LITE).no_loss                # identical: bound = t * se, far below
    assert compare([0.1], LITE) is None                # one seed: no standard error


def test_table_prints_the_verdict():
    rows = [{"model": name, "per_seed": per, "abs_rel": float(np.mean(per)), "rmse": 1.0,
             "a1": 0.9, "seconds": 1.0, "steps": 600, "world": "drive", "size": "192x64",
             "seeds": list(range(len(per)))} for name, per in (("lsmdepth", LSM),
                                                                ("lite-mono", LITE))]
    text = format_accuracy(rows)
    assert "lsmdepth - lite-mono: +0.0017" in text and "No loss of accuracy" in text


def test_seed_lists_and_ranges():
    from lsmdepth_ros.benchmarks.models import parse_seeds

    assert parse_seeds("0,3,5-7") == (0, 3, 5, 6, 7) and parse_seeds("10-12") == (10, 11, 12)
    for bad in ("x", "3-1", "1-2-3"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
