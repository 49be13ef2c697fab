"""``proportional_bias.json`` and the report say why the proportional bias is not estimable instead of NaN."""

import json

import numpy as np
import pandas as pd

from aiecg.evaluate.curves import proportional_bias
from aiecg.evaluate.evaluation import proportional_bias_status
from aiecg.report.runs import RunData
from aiecg.workflows.report import complete_inputs


def test_fewer_than_three_rows_give_a_reason_not_nan_numbers():
    status = proportional_bias(np.array([50.0, 60.0, np.nan]), np.array([52.0, 58.0, 1.0]))
    assert status == {"status": "not_estimable", "n": 2, "reason": "2 participant(s) with both a measured and a "
                      "predicted value; the regression of the difference on the mean needs at least 3"}
    json.dumps(status, allow_nan=False)  # strict JSON: no NaN in the file
    flat = proportional_bias(np.array([50.0, 60.0, 70.0]), np.array([60.0, 50.0, 40.0]))
    assert flat["status"] == "not_estimable" and "same for all 3" in flat["reason"]
    rng = np.random.default_rng(0)
    truth = rng.normal(60, 10, 50)
    fit = proportional_bias(truth, truth + rng.normal(0, 3, 50))
    assert fit["status"] == "estimated" and np.isfinite(fit["slope"]) and fit["n"] == 50
    assert proportional_bias_status(fit) == fit  # a fit with its status is read as it is


def test_the_report_shows_the_reason_also_for_a_file_written_with_nan(tmp_path):
    results = pd.DataFrame({"eid": ["1", "2"], "is_m": [0, 1], "ilvm_true": [50.0, 70.0],
                            "ilvm_pred": [55.0, 66.0]})
    legacy = json.loads('{"slope": NaN, "intercept": NaN, "slope_low": NaN, "slope_high": NaN, "p": NaN, "n": 2}')
    for saved in (legacy, None):  # an old evaluation's file, and a run without the file (computed for the page)
        run = RunData(tmp_path, "run", "evaluate", metrics={"test": {"target": "INDEXED_MASS"}}, results=results,
                      proportional_bias=saved)
        complete_inputs(run)
        assert run.proportional_bias is None  # the Bland-Altman panel draws no regression line
        assert run.notes == ["proportional bias not estimable: 2 participant(s) with both a measured and a "
                             "predicted value; the regression of the difference on the mean needs at least 3"]
