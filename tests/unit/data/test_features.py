import numpy as np
import pytest

from aiecg.data.cohort import ClinicalSpec
from aiecg.data.features import ClinicalEncoder
from aiecg.errors import CohortError
from tests.conftest import CLINICAL, make_table


def _spec() -> ClinicalSpec:
    return ClinicalSpec(CLINICAL["binary"], {k: tuple(v) for k, v in CLINICAL["categorical"].items()},
                        CLINICAL["continuous"])


def test_encoder_uses_training_rows_only():
    table = make_table(100)
    train, test = table.iloc[:70].copy(), table.iloc[70:].copy()
    test.loc[:, "age"] = 200.0  # values the encoder must never see while fitting
    encoder = ClinicalEncoder(_spec()).fit(train)
    assert encoder.n_fit == 70
    assert encoder.maximum["age"] == pytest.approx(train["age"].max())
    assert encoder.fill["sbp"] == pytest.approx(train["sbp"].median())
    x = encoder.transform(train)
    assert x.shape == (70, 3 + 3 + 3)
    age = encoder.feature_names.index("age")
    assert x[:, age].min() == pytest.approx(0.0) and x[:, age].max() == pytest.approx(1.0)
    # test rows are scaled with the training range, so they may fall outside [0, 1]
    span = train["age"].max() - train["age"].min()
    assert encoder.transform(test)[0, age] == pytest.approx((200.0 - train["age"].min()) / span, rel=1e-5)


def test_imputation_one_hot_and_round_trip():
    table = make_table(30)
    table.loc[0, "sbp"] = np.nan
    table.loc[1, "smoking"] = np.nan
    table.loc[2, "diabetes"] = np.nan
    encoder = ClinicalEncoder(_spec()).fit(table)
    x = encoder.transform(table)
    names = encoder.feature_names
    assert names[3:6] == ["smoking=0", "smoking=1", "smoking=2"]
    np.testing.assert_allclose(x[:, 3:6].sum(axis=1), 1.0)
    median_sbp = table["sbp"].median()
    expected = (median_sbp - encoder.minimum["sbp"]) / (encoder.maximum["sbp"] - encoder.minimum["sbp"])
    assert x[0, names.index("sbp")] == pytest.approx(expected)
    assert x[1, names.index(f"smoking={encoder.fill['smoking']}")] == 1.0
    restored = ClinicalEncoder.from_dict(encoder.to_dict())
    np.testing.assert_array_equal(restored.transform(table), x)


def test_unknown_category_is_a_clear_error():
    table = make_table(10)
    encoder = ClinicalEncoder(_spec()).fit(table)
    table.loc[0, "smoking"] = 9
    with pytest.raises(CohortError, match="smoking"):
        encoder.transform(table)
