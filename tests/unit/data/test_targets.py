"""Targets are described by their TargetSpec alone: adding one is one registration."""

import numpy as np
import pytest

from aiecg.data import targets
from aiecg.data.cohort import load_cohort
from aiecg.data.splits import split_participants, stratification_strata
from aiecg.data.targets import TargetSpec, TaskKind, list_targets, register_target, target_spec
from aiecg.evaluate.results import results_table
from tests.conftest import make_table, write_cohort


def test_adding_a_target_is_one_registration(tmp_path, monkeypatch):
    monkeypatch.setattr(targets, "_SPECS", dict(targets._SPECS))
    spec = register_target(TargetSpec("SEPTAL_THICKNESS", TaskKind.REGRESSION, ("SEPTAL_THICKNESS",), ("ivs",), 1,
                                      value_range=((4.0, 30.0),), units=("mm",)))
    assert "SEPTAL_THICKNESS" in targets.list_targets() and target_spec("septal_thickness") is spec
    table = make_table(12)
    table["ivs"] = np.linspace(6, 14, 12)
    table.loc[3, "ivs"] = 45.0  # outside the spec's plausible range: excluded with a reason
    cohort = load_cohort(write_cohort(tmp_path, table, targets={"SEPTAL_THICKNESS": "ivs"}), spec.outputs)
    assert len(cohort.frame) == 11 and "impossible SEPTAL_THICKNESS" in cohort.exclusions["reason"].iloc[0]
    y = cohort.frame[["SEPTAL_THICKNESS"]].to_numpy()
    out = results_table(cohort.ids, cohort.frame["is_male"], spec, y, y + 1)
    assert {"ivs_true", "ivs_pred"} <= set(out.columns) and np.allclose(out["ivs_pred"] - out["ivs_true"], 1)


def test_categorical_codes_are_checked_against_the_spec():
    lvh = target_spec("LVH")
    assert lvh.invalid_codes([0, 1, 1.0, np.nan, None]) == []
    assert lvh.invalid_codes([1, 2, 2]) == [2]
    assert lvh.invalid_codes(["yes", 0]) == ["yes"]
    assert target_spec("HN").invalid_codes([0, 3, 4, 1.5]) == [4, 1.5]
    with pytest.raises(ValueError, match="one column stem per output"):
        TargetSpec("X", TaskKind.REGRESSION, ("A", "B"), ("a",), 2)


def test_rare_classes_are_pooled_so_a_stratified_split_runs():
    labels = np.array([0] * 40 + [1] * 10 + [2] * 1 + [3] * 1)
    strata = stratification_strata(labels)
    assert set(strata) == {"0", "1"}  # the pooled rare pair (2 < 3 members) joins the largest class
    assert set(stratification_strata(np.array([0] * 40 + [2, 2, 3]))) == {"0", "__rare__"}
    ids = np.array([f"p{i}" for i in range(len(labels))])
    splits = split_participants(ids, seed=0, stratify=labels)
    assert sorted([*splits.train, *splits.val, *splits.test]) == sorted(ids)


def test_every_reference_target_has_a_spec():
    assert set(list_targets()) == {"MASS", "INDEXED_MASS", "LVH", "HN", "VOL", "INDEXED_VOL", "MASS_VOL_RATIO",
                                   "MASS_VOL", "INDEXED_MASS_VOL"}
    assert target_spec("INDEXED_MASS_VOL").n_outputs == 2
    assert target_spec("HN").kind is TaskKind.MULTICLASS and target_spec("HN").n_outputs == 4
    assert target_spec("lvh").kind is TaskKind.BINARY
    with pytest.raises(ValueError, match="unknown target"):
        target_spec("LV")
    for name in list_targets():
        assert TargetSpec.from_dict(target_spec(name).to_dict()) == target_spec(name)


def test_sex_specific_lvh_thresholds_at_the_cut_offs():
    indexed = target_spec("INDEXED_MASS").lvh_thresholds
    values = np.array([70.0, 70.1, 55.0, 55.1])
    np.testing.assert_array_equal(indexed.classify(values, np.array([1, 1, 0, 0])), [0, 1, 0, 1])
    mass = target_spec("MASS").lvh_thresholds
    np.testing.assert_array_equal(mass.classify(np.array([141.0, 141.5, 93.0, 93.5]), np.array([1, 1, 0, 0])),
                                  [0, 1, 0, 1])


def test_a_class_column_coded_1_2_is_refused_when_the_cohort_is_loaded(tmp_path):
    from aiecg.errors import CohortError

    table = make_table(12)
    table["lvh"] = [1, 2] * 6
    path = write_cohort(tmp_path, table, targets={"INDEXED_MASS": "ilvm", "LVH": "lvh"})
    with pytest.raises(CohortError, match=r"'lvh' \(LVH\) holds codes \['1', '2'\].*0 = no LVH, 1 = LVH"):
        load_cohort(path, ("INDEXED_MASS",))  # the mapped LVH column labels every run, so it is checked too
    table["lvh"] = [0, 1] * 6
    assert len(load_cohort(write_cohort(tmp_path, table, targets={"LVH": "lvh"}), ("LVH",)).frame) == 12
