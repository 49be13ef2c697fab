import numpy as np
import pytest

from aiecg.data.targets import target_spec
from aiecg.evaluate.bootstrap import bootstrap_ci
from aiecg.evaluate.metrics import auroc_rows, compute_auroc
from aiecg.evaluate.results import results_table


def test_auroc_of_known_orderings():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert compute_auroc(labels, scores) == pytest.approx(8 / 9)  # 8 of 9 positive-negative pairs ordered
    assert np.isnan(compute_auroc(np.zeros(4), np.arange(4)))


def test_row_wise_auroc_equals_the_pairwise_auroc_with_ties_and_one_class_rows():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=(6, 40))
    labels[5] = 1  # one class: undefined
    scores = np.round(rng.normal(size=(6, 40)) + labels, 1)  # rounded: many ties
    rows = auroc_rows(labels, scores)
    assert rows[:5] == pytest.approx([compute_auroc(labels[i], scores[i]) for i in range(5)])
    assert np.isnan(rows[5])
    assert auroc_rows(labels.T, scores.T, axis=0)[:5] == pytest.approx(rows[:5])
    with pytest.raises(ValueError, match="finite"):
        auroc_rows(labels, np.where(scores > 1, np.nan, scores))
    # the bootstrap evaluates it on blocks and gets the interval of the slow, one-resample-at-a-time statistic
    fast = bootstrap_ci(auroc_rows, labels[0], scores[0], seed=1, n_resamples=200, stratify=labels[0])
    slow = bootstrap_ci(compute_auroc, labels[0], scores[0], seed=1, n_resamples=200, stratify=labels[0])
    assert (fast.estimate, fast.low, fast.high) == pytest.approx((slow.estimate, slow.low, slow.high))


def test_results_table_has_reference_columns_and_lvh_by_cut_off():
    spec = target_spec("INDEXED_MASS")
    ids, male = np.array(["a", "b", "c", "d"]), np.array([1, 1, 0, 0])
    truth = np.array([[75.0], [60.0], [58.0], [40.0]])
    pred = np.array([[71.0], [69.0], [56.0], [54.0]])
    table = results_table(ids, male, spec, truth, pred, lvh_true=np.array([1, 0, 1, 0]))
    assert list(table.columns) == ["eid", "is_m", "lvh_true", "ilvm_true", "ilvm_pred", "lvh_pred_cutoff"]
    assert table["lvh_pred_cutoff"].tolist() == [1, 0, 1, 0]
