import numpy as np
import pytest

from aiecg.data.targets import target_spec
from aiecg.evaluate.metrics import compute_auroc
from aiecg.evaluate.results import results_table


def test_auroc_of_known_orderings():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert compute_auroc(labels, scores) == pytest.approx(8 / 9)  # 8 of 9 positive-negative pairs ordered
    assert np.isnan(compute_auroc(np.zeros(4), np.arange(4)))


def test_results_table_has_reference_columns_and_lvh_by_cut_off():
    spec = target_spec("INDEXED_MASS")
    ids, male = np.array(["a", "b", "c", "d"]), np.array([1, 1, 0, 0])
    truth = np.array([[75.0], [60.0], [58.0], [40.0]])
    pred = np.array([[71.0], [69.0], [56.0], [54.0]])
    table = results_table(ids, male, spec, truth, pred, lvh_true=np.array([1, 0, 1, 0]))
    assert list(table.columns) == ["eid", "is_m", "lvh_true", "ilvm_true", "ilvm_pred", "lvh_pred_cutoff"]
    assert table["lvh_pred_cutoff"].tolist() == [1, 0, 1, 0]
