"""What a new user meets first (issue 25), the parts that need no model: one sex decoder, one error row for a
failed worker, one rule for a batch where nothing could be processed, one-line usage errors, readable flags and
summaries, and a warning for a split without LVH cases."""

import math

import numpy as np
import pandas as pd
import pytest

from aiecg.cli import build_parser, main, rounded
from aiecg.conventions import decode_sex
from aiecg.data.cohort import load_cohort
from aiecg.data.selection import warn_without_lvh
from aiecg.data.splits import Splits
from aiecg.data.workers import CRASHED, ERROR, OUT_OF_MEMORY, TIMED_OUT, Limits, Outcome, failure_row
from aiecg.errors import NothingProcessedError, check_processed
from aiecg.workflows.measure import round_to_resolution
from tests.conftest import make_table, write_cohort


@pytest.mark.parametrize("value, expected", [
    (1, 1.0), ("1", 1.0), (1.0, 1.0), (np.int64(0), 0.0), ("Male", 1.0), ("female", 0.0), (" M ", 1.0), ("f", 0.0),
    ("woman", 0.0), (None, math.nan), (math.nan, math.nan), ("", math.nan), ("x", math.nan), (2, math.nan)])
def test_one_sex_decoder_reads_codes_and_words(value, expected):
    got = decode_sex(value, male=1, female=0)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_the_cohort_codes_come_first_and_words_are_understood_in_a_coded_cohort(tmp_path):
    assert decode_sex("M", male=2, female=1) == 1.0 and decode_sex(1, male=2, female=1) == 0.0
    table = make_table(12)
    table["sex"] = table["sex"].map({1: "Male", 0: "Female"}).astype(object)
    table.loc[0, "sex"] = 1  # a coded value among the words
    table.loc[1, "sex"] = "unknown"
    cohort = load_cohort(write_cohort(tmp_path, table), ("INDEXED_MASS",))
    expected = make_table(12)["sex"].to_numpy()
    kept = cohort.frame.set_index("id")["is_male"]
    assert len(kept) == 11 and (kept.to_numpy() == np.delete(np.where(np.arange(12) == 0, 1, expected), 1)).all()
    assert "unknown sex code unknown" in cohort.exclusions["reason"].iloc[0]


def test_a_failed_worker_is_one_error_row_worded_once():
    assert failure_row(Outcome(ERROR, detail="ValueError: x")) == ("processing_error",
                                                                   "processing failed: ValueError: x")
    assert failure_row(Outcome(CRASHED, detail="died of SIGSEGV"))[1] == (
        "the reader crashed on this file (its worker process died of SIGSEGV)")
    assert failure_row(Outcome(TIMED_OUT, detail="took over 5 s")) == (TIMED_OUT, "took over 5 s")
    assert "raise --record-timeout" in failure_row(Outcome(TIMED_OUT, detail="took over 5 s"), Limits(5))[1]
    assert failure_row(Outcome(OUT_OF_MEMORY)) == (OUT_OF_MEMORY, "ran out of memory")
    assert "200 MB" in failure_row(Outcome(OUT_OF_MEMORY), Limits(memory_mb=200))[1]


def test_nothing_processed_is_one_rule():
    check_processed({"ok": 1, "read_error": 5}, ("ok",), "files", "p.csv")
    with pytest.raises(NothingProcessedError, match=r"none of the 3 files could be used \(1 qc_fail, 2 read_error\); "
                                                    "the reason for each is in p.csv"):
        check_processed({"read_error": 2, "qc_fail": 1}, ("ok",), "files", "p.csv")
    check_processed({"read_error": 2, "qc_fail": 1}, ("ok", "qc_fail"), "files", "m.csv")  # measure's statuses


def test_measure_exits_2_when_no_file_could_be_measured(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["-q", "measure", str(tmp_path / "nothere.xml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none of the 1 files could be used (1 read_error)" in err
    assert pd.read_csv(out / "measurements.csv")["status"].tolist() == ["read_error"]  # the reason is kept
    assert main(["-q", "measure", str(tmp_path / "missing_dir") + "/", "--out", str(out)]) == 2


def test_usage_errors_are_one_line_with_the_choices_and_targets_take_any_case(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser(["train"]).parse_args(["train", "--cohort", "c.yaml", "--target", "lvhh"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
    assert "invalid choice: 'lvhh'" in err and "'LVH'" in err and "aiecg train --help" in err
    args = build_parser(["train"]).parse_args(["train", "--cohort", "c.yaml", "--target", "lvh", "--arch", "FCN"])
    assert (args.cfg__target, args.cfg__arch) == ("LVH", "fcn")


@pytest.mark.parametrize("command", ["train", "finetune", "pretrain", "tune", "prepare", "predict"])
def test_every_flag_has_a_readable_metavar(command, capsys):
    with pytest.raises(SystemExit):
        build_parser([command]).parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert "CFG__" not in text
    if command in ("train", "finetune", "pretrain"):
        assert "--epochs INT" in text


def test_summaries_print_figures_to_their_precision():
    summary = {"seconds": 13.324183873000038, "test": {"auroc": 0.9081234567, "n": 150, "mae": 5.3412},
               "prevalence": [0.2066666666, float("nan")], "zero": 0.0}
    out = rounded(summary)
    assert out["seconds"] == 13.3 and out["test"] == {"auroc": 0.9081, "n": 150, "mae": 5.341}
    assert out["prevalence"][0] == 0.2067 and math.isnan(out["prevalence"][1]) and out["zero"] == 0.0


def test_measurements_are_written_to_the_precision_they_have():
    frame = pd.DataFrame({"pr_ms": [137.829], "qrs_axis_deg": [12.6], "heart_rate_bpm": [61.234], "R_V5": [1.23456],
                          "cornell_product": [244.567], "sokolow_lyon": [3.45678], "sokolow_lyon_positive": [1.0],
                          "qrs_on_s": [0.2341], "status": ["ok"]})
    out = round_to_resolution(frame).iloc[0]
    assert (out["pr_ms"], out["qrs_axis_deg"], out["heart_rate_bpm"], out["R_V5"]) == (138.0, 13.0, 61.2, 1.235)
    assert (out["cornell_product"], out["sokolow_lyon"], out["qrs_on_s"]) == (244.6, 3.457, 0.234)


def test_a_split_without_lvh_cases_is_named(caplog):
    frame = pd.DataFrame({"id": [str(i) for i in range(9)], "LVH": [1, 0, 0, 0, 0, 0, 1, 0, 0]})
    splits = Splits(np.array(["0", "1", "2", "6"]), np.array(["3", "4"]), np.array(["5", "7", "8"]))
    with caplog.at_level("WARNING", logger="aiecg"):
        warnings = warn_without_lvh(frame, splits)
    assert len(warnings) == 2 and "the val split has no LVH case among its 2" in warnings[0]
    assert "the test split has no LVH case" in caplog.text
    assert warn_without_lvh(frame.drop(columns="LVH"), splits) == []


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import argparse
    import io

    from aiecg.cli import _progress

    monkeypatch.setattr("sys.stderr", io.StringIO())  # a log file or a pipe
    assert not _progress(argparse.Namespace(quiet=False))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert _progress(argparse.Namespace(quiet=False)) and not _progress(argparse.Namespace(quiet=True))
