"""The TRIPOD+AI checklist: every item answered from the saved runs or listed as open, never invented."""

import json

import pandas as pd

from aiecg.report.runs import RunData
from aiecg.report.tripod import FILLED, ITEMS, OPEN, checklist, is_synthetic


def test_items_are_answered_from_what_the_run_saved_and_the_rest_are_open(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "truth.parquet").write_bytes(b"")  # beside the cohort YAML: a synthetic cohort
    run = RunData(path=tmp_path / "run", label="fcn", kind="train",
                  metrics={"cohort": str(tmp_path / "data" / "cohort.yaml"), "n_resamples": 1000,
                           "subgroups": {"lvh": {}}, "split_sizes": {"train": 70, "val": 15, "test": 15},
                           "test": {"n": 15, "lvh_cases": 4}, "posthoc": {"threshold": 0.3}},
                  exclusions=pd.DataFrame({"id": ["1", "2"], "reason": ["a", "b"]}))
    table = checklist([run], []).set_index("item")
    assert len(table) == len(ITEMS) and table.index.is_unique
    assert table.loc["14", "status"] == FILLED and table.loc["14", "where"] == "#subgroups"
    assert "2 excluded" in table.loc["6b", "evidence"]
    assert "train/val/test 70/15/15" in table.loc["21", "evidence"]
    assert "synthetic" in table.loc["5a", "evidence"] and is_synthetic(run)
    assert table.loc["17", "status"] == OPEN and table.loc["17", "where"] == ""
    assert table.loc["25", "status"] == OPEN  # no explanations given
    assert table.loc["22", "status"] == OPEN  # no bundle: the model specification is not claimed
    json.dumps(table.reset_index().to_dict("records"))  # plain values only


def test_a_run_with_nothing_saved_fills_nothing_it_cannot_show(tmp_path):
    table = checklist([RunData(path=tmp_path, label="empty", kind="evaluate")], []).set_index("item")
    for item in ("6b", "10", "11", "12e", "13", "14", "15", "20a", "21", "22", "23a"):
        assert table.loc[item, "status"] == OPEN, item
