import numpy as np
import pytest
from scipy import stats

from aiecg.data.targets import target_spec
from aiecg.evaluate.metrics import compute_auroc, compute_binary_metrics, compute_regression_metrics
from aiecg.evaluate.results import results_table


def test_regression_metrics_against_hand_computed_values():
    y = np.array([40.0, 50.0, 60.0, 70.0, np.nan])
    p = np.array([42.0, 49.0, 63.0, 66.0, 55.0])
    m = compute_regression_metrics(y, p)
    assert m["n"] == 4 and m["mae"] == pytest.approx((2 + 1 + 3 + 4) / 4)
    assert m["bias"] == pytest.approx((2 - 1 + 3 - 4) / 4)
    assert m["pearson_r"] == pytest.approx(stats.pearsonr(y[:4], p[:4])[0])


def test_auroc_and_binary_metrics():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert compute_auroc(labels, scores) == pytest.approx(8 / 9)  # 8 of 9 positive-negative pairs ordered
    assert np.isnan(compute_auroc(np.zeros(4), np.arange(4)))
    m = compute_binary_metrics(labels, (scores >= 0.5).astype(int))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 0, 1, 3)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == 1.0 and m["npv"] == pytest.approx(0.75)


def test_results_table_has_reference_columns_and_lvh_by_cut_off():
    spec = target_spec("INDEXED_MASS")
    ids, male = np.array(["a", "b", "c", "d"]), np.array([1, 1, 0, 0])
    truth = np.array([[75.0], [60.0], [58.0], [40.0]])
    pred = np.array([[71.0], [69.0], [56.0], [54.0]])
    table = results_table(ids, male, spec, truth, pred, lvh_true=np.array([1, 0, 1, 0]))
    assert list(table.columns) == ["eid", "is_m", "lvh_true", "ilvm_true", "ilvm_pred", "lvh_pred_cutoff"]
    assert table["lvh_pred_cutoff"].tolist() == [1, 0, 1, 0]
