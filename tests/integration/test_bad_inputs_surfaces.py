"""The bad-input matrix of the surfaces added after ``prepare`` (issue 22): measure, predict, export, train,
fine-tune, report, tune and explain, tried as a careless or hostile user would.

Each case asserts the exact behaviour: a silent wrong result becomes an error row or a flag with its reason; a
command that cannot work exits 2 with one line naming the file, record or column, and writes nothing. The
prepare/reader matrix is in ``test_bad_inputs.py``; extend this file for the next attack on the newer commands.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from aiecg.cli import main as aiecg

pytestmark = pytest.mark.integration


def _one_error_line(capsys, command: str) -> str:
    """The single stderr line of a command that exited 2 (and no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"aiecg {command}: error: "), err
    return err[0]


# ------------------------------------------------------------------------------------------ 1. path confinement
def test_measure_refuses_cohort_paths_outside_the_ecg_folder_as_prepare_and_predict_do(cardiosoft_xml, tmp_path):
    """A ``../`` in the table's ECG column or an id that walks out of a ``{id}`` pattern is the record's
    read_error with the reason prepare gives; the file outside (a readable ECG) is never measured."""
    ecg = tmp_path / "cohort" / "ecg"
    ecg.mkdir(parents=True)
    shutil.copy(cardiosoft_xml, ecg / "inside.xml")
    shutil.copy(cardiosoft_xml, tmp_path / "outside.xml")
    pd.DataFrame({"eid": ["a", "b"], "sex": [1, 0], "file": ["inside.xml", "../../outside.xml"]}).to_csv(
        tmp_path / "cohort" / "column.csv", index=False)
    pd.DataFrame({"eid": ["inside", "../../outside"], "sex": [1, 0]}).to_csv(tmp_path / "cohort" / "pattern.csv",
                                                                         index=False)
    sex = {"column": "sex", "male": 1, "female": 0}
    (tmp_path / "cohort" / "column.yaml").write_text(yaml.safe_dump(
        {"table": "column.csv", "id_column": "eid", "sex": sex, "ecg": {"column": "file", "dir": "ecg"}}))
    (tmp_path / "cohort" / "pattern.yaml").write_text(yaml.safe_dump(
        {"table": "pattern.csv", "id_column": "eid", "sex": sex, "ecg": {"dir": "ecg", "pattern": "{id}.xml"}}))
    for name in ("column", "pattern"):
        out = tmp_path / f"out-{name}"
        assert aiecg(["-q", "measure", str(tmp_path / "cohort" / f"{name}.yaml"), "--out", str(out),
                      "--workers", "1"]) == 0
        table = pd.read_csv(out / "measurements.csv", dtype={"record_id": str}).set_index("record_id")
        inside, outside = table.index
        assert table.loc[inside, "status"] == "ok", table.loc[inside, "reason"]
        assert table.loc[outside, "status"] == "read_error"
        assert "outside" in table.loc[outside, "reason"] and "ECG folder" in table.loc[outside, "reason"]
        assert pd.isna(table.loc[outside, "heart_rate_bpm"])
