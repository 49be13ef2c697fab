import numpy as np
import pytest

from aiecg.evaluate.compare import ScoreRow, comparison_markdown, lvh_comparison, regression_comparison
from aiecg.evaluate.delong import compare_sensitivity, delong_test


def test_lvh_comparison_tests_every_row_against_the_prespecified_model_row():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.25).astype(float)
    good = labels * 1.5 + rng.normal(size=400)
    weak = labels * 0.5 + rng.normal(size=400)
    criterion = np.where(rng.random(400) < 0.1, np.nan, weak)  # missing scores shrink the common set
    rows = [ScoreRow("weak", "baseline", weak, 0.2, "validation Youden"),
            ScoreRow("good", "model", good, 0.7, "validation Youden"),
            ScoreRow("criterion", "criterion", criterion, 0.0, "published cut-off")]
    table = lvh_comparison(labels, rows, seed=1, n_resamples=200)
    assert table["reference"].tolist() == [False, True, False]
    # the reference is the model even when another row has the higher AUROC
    flipped = lvh_comparison(labels, [ScoreRow("weak model", "model", weak, 0.2, "v"), rows[1]], seed=1,
                             n_resamples=50)
    assert flipped["reference"].tolist() == [True, False] and flipped.loc[1, "auroc"] > flipped.loc[0, "auroc"]
    common = np.isfinite(criterion)
    assert table["n"].tolist() == [400, 400, common.sum()]  # a row lacking scores loses only its own participants
    expected = delong_test(labels, good, weak).p_value
    assert table.loc[0, "delong_p_vs_reference"] == pytest.approx(expected)
    mcnemar = compare_sensitivity(labels, good >= 0.7, weak >= 0.2).p_value
    on_common = delong_test(labels[common], good[common], criterion[common]).p_value
    assert table.loc[2, "delong_p_vs_reference"] == pytest.approx(on_common)
    assert table.loc[0, "mcnemar_sensitivity_p_vs_reference"] == pytest.approx(mcnemar)
    assert np.isnan(table.loc[1, "delong_p_vs_reference"])
    assert (table["auroc_low"] <= table["auroc"]).all() and (table["auroc"] <= table["auroc_high"]).all()
    regression = regression_comparison(labels * 10, {"a": labels * 10 + 1.0}, seed=0, n_resamples=100)
    assert regression.loc[0, "mae"] == pytest.approx(1.0) and regression.loc[0, "bias"] == pytest.approx(1.0)
    text = comparison_markdown(table, regression, "t")
    assert text.count("\n| ") == (1 + 3) + (1 + 1)  # header and 3 score rows; header and 1 regression row
    assert "| good | model |" in text and "published cut-off" in text
