import numpy as np
import pytest

from aiecg.data.targets import TargetSpec, TaskKind, list_targets, target_spec


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
