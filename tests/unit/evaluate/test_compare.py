import numpy as np
import pytest

from aiecg.evaluate.compare import ScoreRow, comparison_markdown, lvh_comparison, regression_comparison
from aiecg.evaluate.delong import compare_sensitivity, delong_test


def test_lvh_comparison_marks_the_best_row_and_tests_the_others_against_it():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.25).astype(float)
    good = labels * 1.5 + rng.normal(size=400)
    weak = labels * 0.5 + rng.normal(size=400)
    criterion = np.where(rng.random(400) < 0.1, np.nan, weak)  # missing scores shrink the common set
    rows = [ScoreRow("weak", "baseline", weak, 0.2, "validation Youden"),
            ScoreRow("good", "model", good, 0.7, "validation Youden"),
            ScoreRow("criterion", "criterion", criterion, 0.0, "published cut-off")]
    table = lvh_comparison(labels, rows, seed=1, n_resamples=200)
    assert table["best"].tolist() == [False, True, False]
    common = np.isfinite(criterion)
    assert (table["n"] == common.sum()).all()
    expected = delong_test(labels[common], good[common], weak[common]).p_value
    assert table.loc[0, "delong_p_vs_best"] == pytest.approx(expected)
    mcnemar = compare_sensitivity(labels[common], good[common] >= 0.7, weak[common] >= 0.2).p_value
    assert table.loc[0, "mcnemar_sensitivity_p_vs_best"] == pytest.approx(mcnemar)
    assert np.isnan(table.loc[1, "delong_p_vs_best"])
    assert (table["auroc_low"] <= table["auroc"]).all() and (table["auroc"] <= table["auroc_high"]).all()
    regression = regression_comparison(labels * 10, {"a": labels * 10 + 1.0}, seed=0, n_resamples=100)
    assert regression.loc[0, "mae"] == pytest.approx(1.0) and regression.loc[0, "bias"] == pytest.approx(1.0)
    text = comparison_markdown(table, regression, "t")
    assert text.count("\n| ") == (1 + 3) + (1 + 1)  # header and 3 score rows; header and 1 regression row
    assert "| good | model |" in text and "published cut-off" in text
