"""Paced ECGs leave a training cohort by name unless the run keeps them (``RunConfig.include_paced``)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from aiecg.config import RunConfig
from aiecg.data.cohort import ID, Cohort
from aiecg.data.selection import usable_cohort


def _cohort_and_store():
    frame = pd.DataFrame({ID: ["a", "b", "c", "d"], "INDEXED_MASS": [50.0, 60.0, 70.0, 80.0]})
    cohort = Cohort(mapping=None, frame=frame, exclusions=pd.DataFrame(columns=["row", ID, "reason"]))
    index = pd.DataFrame({"id": ["a", "b", "c", "d"], "status": ["ok", "ok", "qc_fail", "ok"],
                          "reason": ["", "", "too few clean beats (2 < 3)", ""],
                          "paced": ["", "ventricular", "", ""]})
    return cohort, SimpleNamespace(index=index)


def test_paced_ecgs_are_excluded_by_default_with_a_named_reason() -> None:
    cohort, store = _cohort_and_store()
    kept = usable_cohort(cohort, store)
    assert list(kept.frame[ID]) == ["a", "d"]
    reasons = kept.exclusions.set_index(ID)["reason"]
    assert reasons["b"].startswith("ECG paced (ventricular pacing): excluded by default")
    assert reasons["c"] == "ECG qc_fail: too few clean beats (2 < 3)"
    assert RunConfig().include_paced is False


def test_include_paced_keeps_them() -> None:
    cohort, store = _cohort_and_store()
    kept = usable_cohort(cohort, store, include_paced=True)
    assert list(kept.frame[ID]) == ["a", "b", "d"]
    assert list(kept.exclusions[ID]) == ["c"]


def test_a_store_without_the_paced_column_is_read_as_before() -> None:
    cohort, store = _cohort_and_store()
    store.index = store.index.drop(columns="paced")
    assert list(usable_cohort(cohort, store).frame[ID]) == ["a", "b", "d"]


def test_a_bundle_records_include_paced_only_where_the_store_could_tell() -> None:
    from aiecg.contract import input_contract, paced_caution
    from aiecg.data.selection import paced_record

    _, store = _cohort_and_store()
    assert paced_record(False, store) is False and paced_record(True, store) is True
    store.index["qc_notes"] = ["", "", "", "pacing not checked: recorded at 250 Hz, ..."]  # 'd' may be paced
    assert paced_record(False, store) is None and paced_record(True, store) is True
    store.index["qc_notes"] = ""
    assert paced_record(False, store) is False
    store.index = store.index.drop(columns="paced")  # prepared before pacing was flagged: 'b' was kept
    assert paced_record(False, store) is None and paced_record(True, store) is True
    manifest = {"fs": 500, "window": 600, "r_offset": 250, "preprocessing": {}}
    caution = paced_caution(input_contract(["I"], manifest, include_paced=paced_record(False, store)), "ventricular")
    assert "does not record whether" in caution and "never saw" not in caution
