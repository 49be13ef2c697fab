import numpy as np
import pytest
import yaml

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


@pytest.mark.parametrize(("override", "message"), [
    ({"ecg": "ecg/"}, r"'ecg' must be a mapping, e\.g\. \{column: ecg_file, format: cardiosoft\}, got 'ecg/' \(str\)"),
    ({"targets": ["ilvm"]}, r"'targets' must be a mapping, e\.g\. \{INDEXED_MASS: ilvm, LVH: lvh\}, got \['ilvm'\]"),
    ({"clinical": ["age"]}, r"'clinical' must be a mapping, e\.g\. \{binary: \[sex\], continuous: \[age\]\}"),
    ({"table": 5}, r"'table' must be the table's file name, e\.g\. cohort\.csv, got 5 \(int\)"),
    ({"ecg": {"dir": "ecg", "pattern": "{eid}.xml"}}, r"'ecg\.pattern' '\{eid\}\.xml' must hold \{id\}"),
    ({"ecg": {"dir": "ecg", "pattern": "{id.xml"}}, r"'ecg\.pattern' '\{id\.xml' is not a valid pattern"),
    ({"ecg": {"column": "f", "options": ["fs", 500]}}, r"'options' must be a mapping, e\.g\. \{variable: H12"),
    ({"clinical": {"continuous": ["sbp"], "ranges": {"sbp": [300, 50]}}},
     r"'clinical\.ranges\.sbp' must be \[low, high\] with low < high, e\.g\. \[50, 300\], got \[300, 50\]"),
    ({"clinical": {"ranges": {"sbp": 50}}}, r"'clinical\.ranges\.sbp' must be \[low, high\]"),
    ({"clinical": {"continous": ["age"]}}, r"unknown key\(s\) \['continous'\] under 'clinical'; allowed: binary"),
    ({"ecg": {"column": "f", "format": "cardiosoftt"}}, r"'ecg\.format' 'cardiosoftt' is not a known format; known: "
                                                        r".*cardiosoft.*wfdb"),
    ({"ecg": {"column": "f", "format": "matlab", "options": {"variabel": "H12"}}},
     r"'ecg\.options' \['variabel'\] are not options of the matlab reader; it takes: .*variable"),
    ({"ecg": {"column": "f", "options": {"nonsense": 1}}}, r"\['nonsense'\] are not options of any reader"),
    ({"sex": {"column": "sex", "male": [1], "female": 0}}, r"'sex\.male' must be one code"),
    ({"idcolumn": "eid"}, r"unknown key\(s\) \['idcolumn'\]; allowed: name, table, id_column"),
])
def test_wrong_yaml_keys_are_named_with_what_they_should_be(tmp_path, override, message):
    with pytest.raises(CohortError, match=message):
        load_cohort(_with_keys(write_cohort(tmp_path, make_table(5)), **override))


def _with_keys(path, **keys):
    """The cohort YAML at ``path`` with ``keys`` replaced."""
    mapping = yaml.safe_load(path.read_text())
    mapping.update(keys)
    path.write_text(yaml.safe_dump(mapping))
    return path


def test_a_yaml_alias_bomb_is_refused_cheaply(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1100  # 1 KB that would expand to 10^9 values
    with pytest.raises(CohortError, match=r"expands to [\d,]+ values through its aliases \(at most 100,000\)"):
        load_cohort(path)
    (tmp_path / "big.yaml").write_text("# " + "x" * 1_100_000)
    with pytest.raises(CohortError, match="too large for a cohort YAML"):
        load_cohort(tmp_path / "big.yaml")


def test_invalid_yaml_is_one_line_naming_where(tmp_path):
    """A YAML error spans several lines in PyYAML's words; the error is one line (found by the fuzz campaign)."""
    path = tmp_path / "broken.yaml"
    path.write_text("table: cohort.csv\nid_column: [eid\nsex: x\n")
    with pytest.raises(CohortError, match="not valid YAML") as error:
        load_cohort(path)
    assert "\n" not in str(error.value) and "line 3" in str(error.value)
    path.write_text("table: cohort.csv\nid_column: e\x04id\n")  # a control character: PyYAML's ReaderError
    with pytest.raises(CohortError, match="not valid YAML \\(unacceptable character #x0004"):
        load_cohort(path)


def test_ids_are_text_zero_padding_kept_blank_ids_named(tmp_path):
    table = make_table(6)
    table["eid"] = [f"{i:09d}" for i in range(1, 7)]
    cohort = load_cohort(write_cohort(tmp_path / "padded", table))
    assert cohort.ids.tolist() == ["000000001", "000000002", "000000003", "000000004", "000000005", "000000006"]
    table = make_table(6).astype({"eid": object})
    table.loc[4, "eid"] = None
    with pytest.raises(CohortError, match=r"1 row\(s\) have no id in column 'eid' \(rows 6\); give every row an id"):
        load_cohort(write_cohort(tmp_path / "blank", table))
    parquet = make_table(4).astype({"eid": float})  # ids stored as floats: 1000001.0 is id 1000001
    parquet.to_parquet(tmp_path / "t.parquet")
    cohort = load_cohort(_with_keys(write_cohort(tmp_path, make_table(4)), table="t.parquet"))
    assert cohort.ids.tolist() == ["1000001", "1000002", "1000003", "1000004"]


def test_text_in_a_numeric_column_is_its_own_exclusion_reason(tmp_path):
    table = make_table(8).astype({"age": object, "ilvm": object, "sbp": object})
    table.loc[1, "age"] = "abc"
    table.loc[2, "ilvm"] = "n/a"
    table.loc[3, "ilvm"] = None          # empty cell: missing, as before
    table.loc[4, "sbp"] = "inf"
    cohort = load_cohort(write_cohort(tmp_path, table), ("INDEXED_MASS",))
    reasons = dict(zip(cohort.exclusions["id"], cohort.exclusions["reason"]))
    assert reasons == {
        "1000002": "non-numeric value 'abc' in clinical column 'age' (a number, or an empty cell if missing)",
        "1000003": "non-numeric INDEXED_MASS value 'n/a' in column 'ilvm' (a number, or an empty cell if missing)",
        "1000004": "missing INDEXED_MASS (column 'ilvm')",
        "1000005": "non-numeric value 'inf' in clinical column 'sbp' (a number, or an empty cell if missing)",
    }
    assert len(cohort.frame) == 4 and np.isfinite(cohort.frame[["age", "sbp", "INDEXED_MASS"]].to_numpy()).all()


def test_ecg_paths_stay_inside_the_ecg_folder(tmp_path):
    from aiecg.data.cohort import ecg_records

    table = make_table(4).astype({"eid": str})
    table.loc[1, "eid"] = "../../../../etc/passwd"
    table.loc[2, "eid"] = "/etc/passwd"
    yaml_path = write_cohort(tmp_path, table, ecg={"dir": "ecg", "pattern": "{id}"})
    records = ecg_records(yaml_path).set_index("id")
    assert records.loc["1000001", "problem"] == "" and records.loc["1000001", "ecg_path"] == str(tmp_path / "ecg" /
                                                                                                   "1000001")
    for bad in ("../../../../etc/passwd", "/etc/passwd"):
        assert f"id {bad!r} makes the ECG path" in records.loc[bad, "problem"]
        assert "outside the ECG folder" in records.loc[bad, "problem"]
    cohort = load_cohort(yaml_path)  # a refused path is never handed on
    assert cohort.frame.set_index("id").loc["../../../../etc/passwd", "ecg_path"] == ""

    table = make_table(3)
    table["f"] = ["ecg/a.xml", "../../etc/passwd", "/data/elsewhere/c.xml"]
    records = ecg_records(write_cohort(tmp_path / "col", table, ecg={"column": "f"})).set_index("id")
    assert records["problem"].tolist()[0] == "" and records["problem"].tolist()[2] == ""  # absolute: on purpose
    assert "'../../etc/passwd' leads outside the cohort's ECG folder" in records["problem"].tolist()[1]
    assert records["ecg_path"].tolist()[2] == "/data/elsewhere/c.xml"
