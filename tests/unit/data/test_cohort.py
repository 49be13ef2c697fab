import numpy as np
import pytest

from aiecg.data.cohort import load_cohort
from aiecg.errors import CohortError
from tests.conftest import make_table, write_cohort


def test_clean_cohort_loads_every_row_and_derives_lvh(tmp_path):
    table = make_table(50)
    cohort = load_cohort(write_cohort(tmp_path, table), ("INDEXED_MASS",))
    assert len(cohort.frame) == 50 and cohort.exclusions.empty
    expected = np.where(table["sex"] == 1, table["ilvm"] > 70, table["ilvm"] > 55).astype(int)
    np.testing.assert_array_equal(cohort.frame["LVH"].to_numpy(), expected)
    assert cohort.frame["id"].tolist() == table["eid"].astype(str).tolist()


def test_bad_rows_are_excluded_with_reasons(tmp_path):
    table = make_table(20)
    table.loc[2, "ilvm"] = -5.0          # impossible target
    table.loc[3, "ilvm"] = np.nan        # missing target
    table.loc[4, "sex"] = 7              # unknown sex code
    table.loc[5, "sbp"] = 900            # outside human range
    cohort = load_cohort(write_cohort(tmp_path, table), ("INDEXED_MASS",))
    assert len(cohort.frame) == 16
    reasons = dict(zip(cohort.exclusions["id"], cohort.exclusions["reason"]))
    assert "impossible INDEXED_MASS" in reasons["1000003"]
    assert "missing INDEXED_MASS" in reasons["1000004"]
    assert "unknown sex code 7" in reasons["1000005"]
    assert "sbp=900" in reasons["1000006"]
    assert cohort.exclusions["row"].tolist() == [4, 5, 6, 7]  # spreadsheet rows (header is row 1)
    cohort.write_exclusions(tmp_path / "run" / "exclusions.csv")
    assert (tmp_path / "run" / "exclusions.csv").read_text().count("\n") == 5


def test_duplicate_ids_are_an_error_listing_rows(tmp_path):
    table = make_table(10)
    table.loc[7, "eid"] = table.loc[2, "eid"]
    with pytest.raises(CohortError, match=r"duplicate participant ids.*row 4 \(id 1000003\).*row 9"):
        load_cohort(write_cohort(tmp_path, table))


def test_missing_columns_and_unknown_targets_are_named(tmp_path):
    table = make_table(10).drop(columns=["bmi"])
    with pytest.raises(CohortError, match=r"\['bmi'\]"):
        load_cohort(write_cohort(tmp_path, table))
    with pytest.raises(CohortError, match="unknown target 'LVMASS'"):
        load_cohort(write_cohort(tmp_path / "b", make_table(10), targets={"LVMASS": "lvm"}))


def test_predefined_split_column(tmp_path):
    from aiecg.data.selection import make_splits
    from aiecg.data.targets import target_spec

    table = make_table(30)
    table["fold"] = np.arange(30) % 10 + 1
    table.loc[0, "fold"] = 11  # in no split: excluded with a reason
    split = {"column": "fold", "train": list(range(1, 9)), "val": [9], "test": [10]}
    cohort = load_cohort(write_cohort(tmp_path, table, split=split), ("INDEXED_MASS",))
    assert "none of train/val/test" in cohort.exclusions["reason"].iloc[0]
    splits = make_splits(cohort.frame, target_spec("INDEXED_MASS"), seed=0, fractions=(0.7, 0.15, 0.15))
    expected_test = sorted(table.loc[table["fold"] == 10, "eid"].astype(str))
    assert list(splits.test) == expected_test and len(splits.val) == 3 and len(splits.train) == 23
