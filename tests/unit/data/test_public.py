"""The public-cohort adapters on the real PTB-XL metadata and records and the CinC 2021 sample headers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aiecg.data.cohort import SPLIT, load_cohort, load_mapping
from aiecg.data.public import (
    PTBXL_FOLDS,
    body_surface_area,
    build_ptbxl_cohort,
    build_wfdb_folder_cohort,
    parse_age,
    parse_dx,
    parse_header_comments,
    parse_scp_codes,
    parse_sex,
    ptbxl_lvh_label,
)
from aiecg.errors import CohortError

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
SHARED_PTBXL_LVH = {"841", "10429", "18091"}  # scp_codes LVH likelihood 35, 100, 100
CINC_LVH = {"E07505", "E07519", "JS20014"}     # Dx holds 164873001


@pytest.fixture(scope="module")
def ptbxl(shared_data, tmp_path_factory):
    return build_ptbxl_cohort(shared_data / "ptbxl", tmp_path_factory.mktemp("ptbxl"))


@pytest.fixture(scope="module")
def ptbxl_full(shared_data, tmp_path_factory):
    return build_ptbxl_cohort(shared_data / "ptbxl", tmp_path_factory.mktemp("ptbxl_full"), only_present=False)


@pytest.fixture(scope="module")
def cinc(shared_data, tmp_path_factory):
    return build_wfdb_folder_cohort(shared_data / "cinc2021", tmp_path_factory.mktemp("cinc"))


def test_scp_codes_are_parsed_as_literals_never_executed():
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}") == {"NORM": 100.0, "SR": 0.0}
    assert parse_scp_codes(np.nan) == {}
    with pytest.raises(CohortError, match="ecg_id 7"):
        parse_scp_codes("__import__('os').getcwd()", record=7)
    with pytest.raises(CohortError, match="likelihoods"):
        parse_scp_codes("{'LVH': 'yes'}")
    assert parse_scp_codes('{"A": 5, }') == {"A": 5.0}
    for broken in ("{'A': 1, 'B'}", "{'A': 1}}", "{'A': 1e400x}", "[('A', 1)]", "{'A': 1,, 'B': 2}"):
        with pytest.raises(CohortError, match="likelihoods"):
            parse_scp_codes(broken)


def test_a_huge_scp_codes_cell_is_refused_by_length_not_parsed():
    for cell in ("{" + "(" * 200_000 + "}", "{'A': 1.0, " + "'B': 2.0, " * 20_000 + "}"):
        with pytest.raises(CohortError, match=r"ecg_id 9: scp_codes cell of [\d,]+ characters is longer"):
            parse_scp_codes(cell, record=9)


def test_every_real_scp_codes_cell_parses_as_the_python_literal(shared_data):
    import ast

    meta = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv", usecols=["scp_codes"])
    assert len(meta) == 21837
    for cell in meta["scp_codes"]:
        assert parse_scp_codes(cell) == {k: float(v) for k, v in ast.literal_eval(cell).items()}


def test_lvh_label_threshold_and_below_threshold_policy():
    codes = {"LVH": 35.0, "SR": 0.0}
    assert ptbxl_lvh_label(codes) == 1.0
    assert ptbxl_lvh_label(codes, threshold=50) == 0.0
    assert np.isnan(ptbxl_lvh_label(codes, threshold=50, below_threshold="exclude"))
    assert ptbxl_lvh_label({"NORM": 100.0}, threshold=50, below_threshold="exclude") == 0.0
    assert ptbxl_lvh_label({"LVH": 100.0}, threshold=100) == 1.0


def test_header_field_parsers():
    fields = parse_header_comments(["Age: 78", "Sex: Male", "Dx: 164873001, 426783006", "Rx: Unknown", "no colon"])
    assert fields == {"age": "78", "sex": "Male", "dx": "164873001, 426783006", "rx": "Unknown"}
    assert parse_age("78") == 78.0 and np.isnan(parse_age("NaN")) and np.isnan(parse_age("Unknown"))
    assert np.isnan(parse_age(None)) and np.isnan(parse_age("-1"))
    assert parse_sex("Male") == 1 and parse_sex("female") == 0 and parse_sex("Unknown") is None
    assert parse_dx(fields["dx"]) == ("164873001", "426783006") and parse_dx(None) == ()
    assert body_surface_area(180, 80) == pytest.approx(2.0)  # sqrt(180 * 80 / 3600)
    assert np.isnan(body_surface_area(np.nan, 80))


def test_ptbxl_full_metadata_counts_and_folds(ptbxl_full):
    assert ptbxl_full.n_records == 21837 and ptbxl_full.n_excluded == 0
    assert ptbxl_full.n_lvh == 2137  # every LVH statement (likelihood > 0) at the default threshold 0
    table = pd.read_csv(ptbxl_full.table)
    counts = table["strat_fold"].value_counts().sort_index().to_dict()
    assert counts == {1: 2177, 2: 2184, 3: 2194, 4: 2175, 5: 2176, 6: 2178, 7: 2178, 8: 2179, 9: 2193, 10: 2203}
    assert table["lvh_likelihood"].value_counts().to_dict() == {100.0: 1089, 50.0: 580, 15.0: 193, 35.0: 188,
                                                                80.0: 87}
    assert (table["lvh_likelihood"] >= 50).sum() == 1756
    # the loader maps every fold to its split; patients never straddle two splits
    cohort = load_cohort(ptbxl_full.cohort_yaml, ("LVH",))
    frame = cohort.frame.merge(table.astype({"ecg_id": str}), left_on="id", right_on="ecg_id")
    expected = frame["strat_fold"].map({f: name for name, folds in PTBXL_FOLDS.items() for f in folds})
    assert (frame[SPLIT] == expected).all()
    assert frame[SPLIT].value_counts().to_dict()["test"] == (frame["strat_fold"] == 10).sum()
    assert frame.groupby("patient_id")[SPLIT].nunique().max() == 1
    # only children (age < 16, outside aiecg's adult range) are excluded by the loader, each with its reason
    assert len(cohort.exclusions) == (table["age"] < 16).sum() == 64
    assert cohort.exclusions["reason"].str.contains("age=").all()
    # implausible heights/weights became missing (so they do not exclude the ECG) and are listed
    cleaned = pd.read_csv(ptbxl_full.cleaned)
    assert len(cleaned) == 24 and table["height"].min() >= 100 and table["weight"].min() >= 25


def test_ptbxl_threshold_50(shared_data, tmp_path):
    result = build_ptbxl_cohort(shared_data / "ptbxl", tmp_path, lvh_threshold=50)
    table = pd.read_csv(result.table)
    assert set(table.loc[table["lvh"] == 1, "ecg_id"].astype(str)) == SHARED_PTBXL_LVH - {"841"}
    assert "likelihood >= 50" in result.cohort_yaml.read_text()


def test_ptbxl_shared_records(ptbxl, shared_data):
    assert ptbxl.n_records == 30 and ptbxl.n_lvh == 3 and ptbxl.n_excluded == 21837 - 30
    table = pd.read_csv(ptbxl.table).set_index("ecg_id")
    assert set(table.index[table["lvh"] == 1].astype(str)) == SHARED_PTBXL_LVH
    # PTB-XL sex 1 (female) -> 0; record 841: 73-year-old woman, 150 cm, 70 kg (its header agrees)
    row = table.loc[841]
    assert (row["sex"], row["age"], row["height"], row["weight"]) == (0, 73.0, 150.0, 70.0)
    assert row["bsa"] == pytest.approx(np.sqrt(150 * 70 / 3600)) and row["bmi"] == pytest.approx(70 / 1.5**2)
    assert (table.loc[10429, "sex"], table.loc[10429, "age"]) == (1, 66.0) and np.isnan(table.loc[10429, "height"])
    # the flat layout resolves, every path exists; paths are relative to the PTB-XL folder (the YAML's ecg.dir)
    for path in table["ecg_file"]:
        assert not Path(path).is_absolute()
        assert (shared_data / "ptbxl" / path).exists() and (shared_data / "ptbxl" / path).with_suffix(".dat").exists()
    assert table.loc[841, "ecg_file"] == "records500/00841_hr.hea"
    excluded = pd.read_csv(ptbxl.excluded)
    assert not set(excluded["id"].astype(str)) & set(table.index.astype(str))
    assert excluded.loc[excluded["id"] == 1, "reason"].item().startswith("record records500/00000/00001_hr not found")
    # the folds of the 30: train 21, val 5 (fold 9), test 4 (fold 10); all three LVH cases are in training folds
    cohort = load_cohort(ptbxl.cohort_yaml, ("LVH",))
    assert cohort.exclusions.empty
    assert cohort.frame[SPLIT].value_counts().to_dict() == {"train": 21, "val": 5, "test": 4}
    expected = table["strat_fold"].map({f: n for n, folds in PTBXL_FOLDS.items() for f in folds})
    assert (cohort.frame.set_index("id")[SPLIT] == expected.rename(index=str)).all()


def test_ptbxl_100hz_and_seeded_split(shared_data, tmp_path):
    result = build_ptbxl_cohort(shared_data / "ptbxl", tmp_path, rate=100, use_folds=False, table_format="parquet")
    table = pd.read_parquet(result.table)
    assert result.n_records == 30 and table["ecg_file"].str.endswith("_lr.hea").all()
    assert "split" not in yaml.safe_load(result.cohort_yaml.read_text())
    assert SPLIT not in load_cohort(result.cohort_yaml, ("LVH",)).frame


def test_ptbxl_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(CohortError, match="ptbxl_database.csv"):
        build_ptbxl_cohort(tmp_path, tmp_path / "out")


def test_cinc_folder(cinc, shared_data):
    assert (cinc.n_records, cinc.n_lvh, cinc.n_excluded) == (50, 3, 0)
    table = pd.read_csv(cinc.table).set_index("record")
    assert set(table.index[table["lvh"] == 1]) == CINC_LVH
    assert (table.loc["E07500", "age"], table.loc["E07500", "sex"]) == (78, 1)
    assert (table.loc["HR06000", "age"], table.loc["HR06000", "sex"]) == (59, 0)
    assert table.loc["JS20014", "dx"] == "284470004,698252002,426177001,164873001,55930002"
    folder = shared_data / "cinc2021"
    assert all((folder / p).exists() and (folder / p).with_suffix(".mat").exists() for p in table["ecg_file"])
    cohort = load_cohort(cinc.cohort_yaml, ("LVH",))
    assert SPLIT not in cohort.frame  # runs use the seeded split
    assert cohort.exclusions["id"].tolist() == ["JS20008"]  # a 5-year-old: outside the adult age range


def test_cinc_exclusions_and_codes(shared_data, tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    source = shared_data / "cinc2021"
    for name in ("E07500", "E07505", "E07501", "E07502"):
        for suffix in (".hea", ".mat"):
            (folder / f"{name}{suffix}").write_bytes((source / f"{name}{suffix}").read_bytes())
    header = folder / "E07501.hea"
    header.write_text(header.read_text().replace("Sex: Male", "Sex: Unknown").replace("Age: 65", "Age: NaN"))
    (folder / "E07502.mat").unlink()
    sub = folder / "g2"
    sub.mkdir()
    for suffix in (".hea", ".mat"):
        (sub / f"E07519{suffix}").write_bytes((source / f"E07519{suffix}").read_bytes())
    header = sub / "E07519.hea"
    header.write_text(header.read_text().replace("Age: 73", "Age: Unknown"))

    result = build_wfdb_folder_cohort(folder, tmp_path / "out", lvh_codes=("164873001", "426177001"))
    table = pd.read_csv(result.table).set_index("record")
    assert sorted(table.index) == ["E07500", "E07505", "E07519"]
    assert table["lvh"].to_dict() == {"E07500": 1, "E07505": 1, "E07519": 1}  # E07500: Dx 426177001
    assert np.isnan(table.loc["E07519", "age"]) and table.loc["E07519", "subfolder"] == "g2"
    reasons = pd.read_csv(result.excluded).set_index("id")["reason"]
    assert "unknown sex 'Unknown'" in reasons["E07501"] and "E07502.mat" in reasons["E07502"]
    assert build_wfdb_folder_cohort(folder, tmp_path / "flat", recursive=False).n_records == 2


def test_example_configs_match_what_the_adapters_write(ptbxl, cinc):
    fields = ("id_column", "sex_column", "male_code", "female_code", "ecg_format", "ecg_column", "targets",
              "clinical", "split")
    for config, written in (("ptbxl.yaml", ptbxl), ("cinc2021.yaml", cinc)):
        example, actual = load_mapping(CONFIGS / config), load_mapping(written.cohort_yaml)
        assert {f: getattr(example, f) for f in fields} == {f: getattr(actual, f) for f in fields}, config


def test_ptbxl_nested_layout_anonymised_age_and_unknown_sex(shared_data, tmp_path):
    """The official layout (records500/00000/00841_hr), age 300 (>89) and a bad sex code, on a 4-row table."""
    root = tmp_path / "ptbxl"
    meta = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv").set_index("ecg_id").loc[[841, 1612, 2132, 1]]
    meta.loc[1612, "age"] = 300
    meta.loc[2132, "sex"] = 9
    (root / "records500" / "00000").mkdir(parents=True)
    (root / "records500" / "01000").mkdir(parents=True)
    for record in ("00841_hr", "01612_hr", "02132_hr"):
        folder = root / "records500" / ("01000" if record == "01612_hr" else "00000")
        for suffix in (".hea", ".dat"):
            (folder / f"{record}{suffix}").write_bytes((shared_data / "ptbxl" / "records500" / f"{record}{suffix}")
                                                       .read_bytes())
    meta.reset_index().to_csv(root / "ptbxl_database.csv", index=False)
    result = build_ptbxl_cohort(root, tmp_path / "out")
    table = pd.read_csv(result.table).set_index("ecg_id")
    assert sorted(table.index) == [841, 1612] and result.n_excluded == 2
    assert table.loc[841, "ecg_file"] == "records500/00000/00841_hr.hea"
    assert (table.loc[1612, "age"], table.loc[1612, "age_capped"]) == (90.0, 1)
    reasons = pd.read_csv(result.excluded).set_index("id")["reason"]
    assert "unknown sex code 9" in reasons[2132] and "not found" in reasons[1]
    assert result.n_lvh == 1  # 841


def test_adapters_write_relative_paths_so_the_cohort_folder_can_move(ptbxl, cinc, shared_data, tmp_path):
    import shutil

    import yaml

    from aiecg.data.cohort import ECG_PATH, load_cohort

    for result in (ptbxl, cinc):
        table = pd.read_csv(result.table)
        assert not any(Path(p).is_absolute() for p in table["ecg_file"])
        mapping = yaml.safe_load(Path(result.cohort_yaml).read_text())
        assert not Path(mapping["ecg"]["dir"]).is_absolute()
        frame = load_cohort(result.cohort_yaml).frame
        assert len(frame) and all(Path(p).exists() for p in frame[ECG_PATH])
    # the data set and its cohort folder moved together: the cohort still finds every record
    moved = tmp_path / "moved"
    shutil.copytree(shared_data / "cinc2021", moved / "cinc2021")
    built = build_wfdb_folder_cohort(moved / "cinc2021", moved / "cohort")
    shutil.move(str(moved), str(tmp_path / "elsewhere"))
    frame = load_cohort(tmp_path / "elsewhere" / "cohort" / Path(built.cohort_yaml).name).frame
    assert len(frame) == built.n_records - 1 and all(Path(p).exists() for p in frame[ECG_PATH])  # JS20008: age 5
