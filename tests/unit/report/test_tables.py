"""The characteristics table's tests are scipy's, and exclusion reasons collapse into countable categories."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aiecg.report.tables import _reason_group, compare_groups, format_p


@pytest.fixture
def groups():
    rng = np.random.default_rng(0)
    a = pd.DataFrame({"age": rng.normal(60, 8, 40), "htn": rng.integers(0, 2, 40), "smoking": rng.integers(0, 3, 40)})
    b = pd.DataFrame({"age": rng.normal(66, 12, 25), "htn": (rng.random(25) < 0.8).astype(int),
                      "smoking": rng.integers(0, 3, 25)})
    return a, b


def test_group_comparison_uses_welch_fisher_and_chi_squared(groups):
    a, b = groups
    table = compare_groups([("A", a), ("B", b)], [("age", "age", "continuous"), ("htn", "hypertension", "binary"),
                                                  ("smoking", "smoking", "categorical")])
    rows = table.set_index("variable")
    assert rows.loc["n", "A"] == "40" and rows.loc["n", "B"] == "25"
    # a summary of means tested by a test of means; p in the journal convention, in the page and in the CSV
    assert rows.loc["age", "p"] == format_p(stats.ttest_ind(a["age"], b["age"], equal_var=False).pvalue) == "0.007"
    assert rows.loc["age", "A"] == f"{np.mean(a['age']):.1f} ({np.std(a['age'], ddof=1):.1f})"
    assert rows.loc["age", "summary"] == "mean (SD)" and rows.loc["age", "missing"] == "0 / 0"
    two_by_two = [[(a["htn"] == 0).sum(), (a["htn"] == 1).sum()], [(b["htn"] == 0).sum(), (b["htn"] == 1).sum()]]
    assert rows.loc["hypertension", "p"] == format_p(stats.fisher_exact(two_by_two).pvalue)
    n_a = int((a["htn"] == 1).sum())
    assert rows.loc["hypertension", "A"] == f"{n_a} ({100 * n_a / 40:.1f}%)"
    counts = [[(g["smoking"] == k).sum() for k in range(3)] for g in (a, b)]
    assert rows.loc["smoking = 0", "p"] == format_p(stats.chi2_contingency(counts).pvalue)
    assert rows.loc["smoking = 1", "p"] == ""  # one p-value per variable, on its first level
    assert rows.loc["smoking = 0", "test"] == "chi-squared" and rows.loc["hypertension", "test"] == "Fisher's exact"


def test_missing_values_are_counted_per_group(groups):
    a, b = groups
    a = a.astype({"age": float})
    a.loc[:2, "age"] = np.nan
    table = compare_groups([("A", a), ("B", b)], [("age", "age", "continuous")]).set_index("variable")
    assert table.loc["age", "missing"] == "3 / 0"
    assert table.loc["age", "A"].startswith(f"{a['age'].mean():.1f} ")


def test_exclusion_reasons_are_grouped_without_values_or_leads():
    assert _reason_group("saturated lead V5") == _reason_group("saturated lead V6") == "saturated lead"
    assert _reason_group("excessive noise in lead I (44% of power >= 40 Hz)") == "excessive noise in lead"
    assert _reason_group("clinical value sbp=300.0 outside human range 60-280") == \
        _reason_group("clinical value sbp=20 outside human range 60-280")
    assert format_p(0.0004) == "<0.001" and format_p(0.0312) == "0.031" and format_p(float("nan")) == "n/a"


def test_interval_coverage_table_reads_the_evaluations_conformal_report():
    from pathlib import Path

    from aiecg.data.targets import target_spec
    from aiecg.evaluate.conformal import coverage_report, fit_conformal
    from aiecg.report.runs import RunData
    from aiecg.report.tables import interval_coverage_table

    rng = np.random.default_rng(3)
    truth, is_m = rng.normal(50, 8, 600), rng.integers(0, 2, 600)
    pred = truth + rng.normal(0, np.where(is_m == 1, 8.0, 4.0))
    conformal = fit_conformal(truth[:300, None], pred[:300, None], ["INDEXED_MASS"], is_male=is_m[:300])
    table = pd.DataFrame({"ilvm_true": truth[300:], "ilvm_pred": pred[300:], "is_m": is_m[300:]})
    report = coverage_report(conformal, target_spec("INDEXED_MASS"), table, levels=(0.9,))
    rows = interval_coverage_table(RunData(Path("run"), "run", "train", metrics={"conformal": report}))
    assert list(rows["participants"]) == ["overall", "male", "female"] and (rows["level"] == "90%").all()
    men = rows.set_index("participants").loc["male"]
    half = conformal.quantile("INDEXED_MASS", 0.9, "male")
    rows_m = table["is_m"] == 1
    expected = np.mean(np.abs(table.loc[rows_m, "ilvm_true"] - table.loc[rows_m, "ilvm_pred"]) <= half)
    assert men["coverage"] == f"{100 * expected:.1f}%" and men["n"] == int(rows_m.sum())
    assert men["mean width (output units)"] == f"{2 * half:.1f}"
    assert interval_coverage_table(RunData(Path("run"), "run", "train", metrics={})) is None


def test_the_models_sensitivity_at_a_criterions_specificity_is_on_the_criterions_participants():
    """The model's best ROC point at the criterion's specificity, on the participants the criterion scores only:
    the model ranks the rest (which the criterion cannot read) perfectly, and they must not help it."""
    from pathlib import Path

    from aiecg.report.runs import RunData
    from aiecg.report.tables import AT_CRITERIA_SENSITIVITY, sensitivity_at_criteria

    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0] + [1] * 5 + [0] * 5)
    model = np.array([0.9, 0.6, 0.4, 0.2, 0.7, 0.5, 0.3, 0.1, 0.05, 0.0] + [0.99] * 5 + [0.01] * 5)
    cornell = np.r_[[1, -1, 1, -1, 1, -1, -1, -1, -1, -1], [np.nan] * 10]  # sensitivity 0.5, specificity 5/6
    eid = [str(i) for i in range(20)]
    saved = pd.DataFrame({"eid": eid, "score: net": model, "score: Cornell voltage": cornell})
    comparison = pd.DataFrame({"name": ["net", "Cornell voltage"], "kind": ["model", "criterion"],
                               "specificity": [0.8, 0.9], "sensitivity": [0.7, 0.2], "n": [20, 10]})
    run = RunData(Path("run"), "run", "evaluate", comparison=comparison, comparison_scores=saved,
                  results=pd.DataFrame({"eid": eid[::-1], "lvh_true": truth[::-1]}))  # matched by id, not row
    row = sensitivity_at_criteria(run).set_index("criterion").loc["Cornell voltage"]
    assert row["n"] == 10 and row["criterion specificity"] == "0.833" and row["criterion sensitivity"] == "0.500"
    # on the ten: at most 1 of 6 false positives -> threshold 0.6 (0.9, 0.7, 0.6 called): sensitivity 2/4
    assert row[AT_CRITERIA_SENSITIVITY] == "0.500" and row["model threshold"] == "0.6"
    # over all twenty the perfectly ranked ten would have given 7/9 = 0.778 at that false-positive rate
    assert sensitivity_at_criteria(RunData(Path("run"), "run", "train", comparison=comparison)) is None


def test_the_flow_diagram_reads_the_flow_table():
    from aiecg.report.figures.flow import _steps

    table = pd.DataFrame([("rows in the cohort table", 120, ""), ("excluded by the cohort checks", 2, ""),
                          ("", 2, "clinical value out of range"), ("excluded: ECG missing or failed QC", 5, ""),
                          ("", 4, "qc_fail: flat lead"), ("", 1, "qc_fail: noise"), ("usable participants", 113, ""),
                          ("train split", 79, ""), ("val split", 17, ""), ("test split", 17, "")],
                         columns=["step", "participants", "reason"])
    main, splits = _steps(table)
    assert [m[0] for m in main] == ["rows in the cohort table", "excluded by the cohort checks",
                                    "excluded: ECG missing or failed QC", "usable participants"]
    assert main[2][2] == ["4 qc_fail: flat lead", "1 qc_fail: noise"] and main[1][1] == 2
    assert splits == [("train split", 79, ""), ("val split", 17, ""), ("test split", 17, "")]


def _evaluation(split: str, n_results: int, **metrics):
    from pathlib import Path

    from aiecg.report.runs import RunData

    exclusions = pd.DataFrame({"id": ["a", "b", "c"], "reason": ["missing target ilvm", "ECG qc_fail: flat lead",
                                                                   "ECG qc_fail: noise"]})
    return RunData(path=Path("evaluation"), label="ev", kind="evaluate", metrics={"split": split, **metrics},
                   results=pd.DataFrame({"id": [str(i) for i in range(n_results)]}), exclusions=exclusions)


def test_the_flow_of_a_test_split_evaluation_counts_the_whole_cohort():
    """157 usable of 160 rows, 24 of them in the test split and evaluated: not 'rows 27, usable 24'."""
    from aiecg.report.figures.flow import _steps
    from aiecg.report.tables import participant_flow

    flow = participant_flow(_evaluation("test", 24, split_sizes={"train": 110, "val": 23, "test": 24}))
    counts = dict(zip(flow["step"], flow["participants"]))
    assert counts["rows in the cohort table"] == 160 and counts["usable participants"] == 157
    assert counts["test split"] == 24 and counts["train split"] == 110 and "evaluated" not in counts
    assert flow.set_index("step").loc["test split", "reason"] == "evaluated"
    assert "every usable participant" not in set(flow["reason"])
    assert _steps(flow)[1][-1] == ("test split", 24, "evaluated")  # the diagram marks the evaluated split
    everyone = participant_flow(_evaluation("all", 157)).set_index("step")
    assert everyone.loc["rows in the cohort table", "participants"] == 160
    assert everyone.loc["evaluated", "reason"] == "every usable participant"
    unknown = participant_flow(_evaluation("test", 24)).set_index("step")  # no split sizes: totals unknown
    assert np.isnan(unknown.loc["rows in the cohort table", "participants"])
    assert "usable participants" not in unknown.index and unknown.loc["evaluated", "reason"] == "the test split"


def test_subgroup_interaction_tests_are_shown_from_the_saved_metrics_with_a_row_where_none_was_saved():
    from pathlib import Path

    from aiecg.evaluate.stats import subgroup_reports
    from aiecg.report.figures.subgroups import _subgroup_rows
    from aiecg.report.runs import RunData
    from aiecg.report.tables import subgroup_interactions

    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"is_m": rng.integers(0, 2, 300), "age": rng.uniform(40, 80, 300)})
    frame["lvh_true"] = (rng.random(300) < 0.3).astype(int)
    frame["score"] = frame["lvh_true"] * np.where(frame["is_m"] == 1, 3.0, 0.2) + rng.normal(0, 1, 300)
    block = subgroup_reports(frame, "classification", "lvh_true", "score", seed=0, n_resamples=20, threshold=0.5,
                             tertile_columns=("age",))
    run = RunData(Path("run"), "run", "evaluate", metrics={"subgroups": {"lvh": block}})
    rows = subgroup_interactions(run).set_index("subgroups")
    assert rows.loc["sex", "p"] == "<0.001" and rows.loc["sex", "df"] == 1  # informative in men only
    assert rows.loc["age", "p"] == format_p(block["interaction"]["age"]["p"]) and rows.loc["age", "metric"] == "AUROC"
    assert rows.loc["sex", "per level"].startswith("female: ")
    labels = [row[0] for row in _subgroup_rows(block, "auroc") if row[5]]  # the figure's header rows
    age_p = block["interaction"]["age"]["p"]
    assert labels == ["sex: AUROC differs? p < 0.001", f"age: AUROC differs? p = {age_p:.3f}"]
    del block["interaction"]  # a run evaluated before the tests existed
    old = subgroup_interactions(run)
    assert (old["p"] == "n/a").all() and old["note"].str.contains("re-run aiecg evaluate").all()
    assert _subgroup_rows(block, "auroc")[1][0] == "sex: AUROC differs? not tested"
