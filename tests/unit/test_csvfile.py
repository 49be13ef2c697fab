"""The one CSV writer: formula cells neutralised (OWASP rule), numbers kept numeric, exact values recoverable."""

import csv

import pandas as pd
import pytest

from aiecg.csvfile import neutralise_cell, read_csv, restore_cell, write_csv

ATTACKS = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|''!A0",
           "\t=1+1", "\r=1+1", "'=already quoted", "'"]


@pytest.mark.parametrize("value", ATTACKS)
def test_a_formula_cell_gets_a_quote_in_front_and_comes_back_exactly(value):
    assert neutralise_cell(value) == "'" + value
    assert restore_cell(neutralise_cell(value)) == value


@pytest.mark.parametrize("value", ["-1.5", "+44", "1e-3", "-.5", "abc", "a=b", "", "42"])
def test_plain_text_and_numbers_written_as_text_are_left_alone(value):
    assert neutralise_cell(value) == value


def test_write_csv_neutralises_text_cells_and_headers_and_read_csv_restores_them(tmp_path):
    frame = pd.DataFrame({"record_id": [*ATTACKS, "ok", float("nan")], "value": [-1.5] * len(ATTACKS) + [2.0, -3.0],
                          "=evil()": ["x"] * (len(ATTACKS) + 2)})
    path = write_csv(frame, tmp_path / "sub" / "t.csv")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["record_id", "value", "'=evil()"] and len(rows) == len(frame) + 1
    assert rows[1] == ["'=HYPERLINK(\"http://x\",\"y\")", "-1.5", "x"]
    assert path.read_text().split("\n")[1].endswith(",-1.5,\"x\"")  # the number stays a number, unquoted
    raw = pd.read_csv(path, keep_default_na=False)
    formula = [c for c in raw["record_id"] if c and c[0] in "=+-@\t\r"]
    assert formula == []  # no cell a spreadsheet would run
    back = read_csv(path)
    pd.testing.assert_frame_equal(back, frame)
    assert back["value"].dtype == float


def test_without_a_carriage_return_the_file_is_what_pandas_writes_for_plain_values(tmp_path):
    frame = pd.DataFrame({"eid": ["1001", "1002"], "ilvm_pred": [48.61, -0.5], "reason": ["", "a, b"]})
    assert write_csv(frame, tmp_path / "t.csv").read_text() == frame.to_csv(index=False)
