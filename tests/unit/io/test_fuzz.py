"""Property: every reader, fed a truncated or byte-mutated real file, returns a valid ECG or raises ECGReadError.

Each reader function is called directly (its own robustness) and through ``read_ecg`` (the registry's wrapper).
Nothing else may escape: no IndexError from a decoder, no struct.error, no partial array. The intact file must
read as a valid ECG (an error there fails the test). Every damaged file comes from
``aiecg.io.fuzz.damage(original, seed)``; a failure prints its seed, and ``AIECG_FUZZ_SEED=<base>`` replays the
whole run (the default base seed is fixed, so the suite is deterministic).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from aiecg.ecg import ECG, KNOWN_LEADS, STANDARD_LEADS
from aiecg.errors import ECGReadError
from aiecg.io import read_ecg
from aiecg.io.arrays import read_csv, read_npy, read_npz
from aiecg.io.cardiosoft import read_cardiosoft
from aiecg.io.fuzz import damage
from aiecg.io.matlab import read_matlab
from aiecg.io.vendor import read_dicom, read_hl7_aecg, read_muse, read_philips_sierra, read_scp
from aiecg.io.wfdb import read_wfdb


def _needs(case_name: str) -> str | None:
    """The optional library a case's reader needs, when it is not installed (only those cases skip)."""
    library = ("pydicom" if case_name.startswith("dicom") else
               "ecgdatakit" if case_name.split("_")[0] in ("muse", "hl7", "scp", "sierra") else None)
    return library if library and importlib.util.find_spec(library) is None else None

EXAMPLES = 40
BASE_SEED = int(os.environ.get("AIECG_FUZZ_SEED", "20260"))


@dataclass(frozen=True)
class Case:
    """One real file to damage: ``target`` is the file that gets damaged, ``companions`` are copied intact."""

    name: str
    read: Callable[[Path], ECG]
    target: str
    companions: tuple[str, ...] = ()


def _ship_mat(source: ECG, path: Path) -> None:
    rows = [source.lead(n) for n in STANDARD_LEADS] + [source.lead("V6"), source.lead("aVF"), -source.lead("V2")]
    scipy.io.savemat(path, {"H12": np.rint(np.stack(rows) * 1000).astype(np.int16)})


@pytest.fixture(scope="module")
def fuzz_sources(shared_data, tmp_path_factory) -> Path:
    """Real files, plus array-format files made from a real PTB-XL record, in one folder."""
    folder = tmp_path_factory.mktemp("sources")
    formats = shared_data / "formats"
    for name in ("ukb_cardiosoft/example-XML1.xml", "muse/MUSE_20200923_093504_79000_example.xml",
                 "hl7_aecg/subject1_0.xml", "dicom/example-DICOM1.dcm", "dicom/pydicom_waveform_ecg.dcm",
                 "scp/Example.scp", "scp/ECG_20170504_163507_123456789.SCP", "philips_sierra/129DYPRG.XML",
                 "philips_sierra/2020-5-18_15-48-11.xml"):
        shutil.copy(formats / name, folder / Path(name).name)
    for suffix in (".hea", ".dat"):
        shutil.copy(shared_data / "ptbxl" / "records500" / f"00841_hr{suffix}", folder / f"00841_hr{suffix}")
    for suffix in (".hea", ".mat"):
        shutil.copy(shared_data / "cinc2021" / f"JS20000{suffix}", folder / f"JS20000{suffix}")
    record = read_wfdb(folder / "00841_hr.hea")
    _ship_mat(record, folder / "ship.mat")
    np.save(folder / "record.npy", record.signal)
    np.savez(folder / "record.npz", signal=record.signal, leads=np.array(record.leads), fs=record.fs)
    np.savetxt(folder / "record.csv", record.signal[:, :1000].T, delimiter=",", header=",".join(record.leads),
               comments="", fmt="%.3f")
    return folder


CASES = [
    Case("cardiosoft", read_cardiosoft, "example-XML1.xml"),
    Case("muse", read_muse, "MUSE_20200923_093504_79000_example.xml"),
    Case("hl7_aecg", read_hl7_aecg, "subject1_0.xml"),
    Case("dicom_ge", read_dicom, "example-DICOM1.dcm"),
    Case("dicom_mortara", read_dicom, "pydicom_waveform_ecg.dcm"),
    Case("scp_12", read_scp, "Example.scp"),
    Case("scp_8", read_scp, "ECG_20170504_163507_123456789.SCP"),
    Case("sierra_mrx", read_philips_sierra, "129DYPRG.XML"),
    Case("sierra_tc", read_philips_sierra, "2020-5-18_15-48-11.xml"),
    Case("wfdb_dat", read_wfdb, "00841_hr.dat", ("00841_hr.hea",)),
    Case("wfdb_hea", read_wfdb, "00841_hr.hea", ("00841_hr.dat",)),
    Case("wfdb_challenge_mat", read_wfdb, "JS20000.mat", ("JS20000.hea",)),
    Case("matlab_ship", read_matlab, "ship.mat"),
    Case("npy", partial(read_npy, leads=STANDARD_LEADS, fs=500.0), "record.npy"),
    Case("npz", read_npz, "record.npz"),
    Case("csv", partial(read_csv, fs=500.0), "record.csv"),
]


def _assert_valid_ecg(ecg: object) -> None:
    assert isinstance(ecg, ECG), f"returned {type(ecg).__name__}, not an ECG"
    assert ecg.signal.ndim == 2 and ecg.signal.shape[0] == len(ecg.leads) and ecg.signal.shape[1] >= 2
    assert ecg.signal.dtype == np.float32 and np.isfinite(ecg.signal).all()
    assert np.isfinite(ecg.fs) and 50 <= ecg.fs <= 20_000 and ecg.duration_s >= 2 and set(ecg.leads) <= KNOWN_LEADS
    if ecg.median is not None:
        assert ecg.median.shape[0] == len(ecg.leads) and np.isfinite(ecg.median).all()


def _assert_valid_or_read_error(call: Callable[[], ECG]) -> None:
    try:
        ecg = call()
    except ECGReadError as exc:
        assert exc.path and exc.reason
        return
    _assert_valid_ecg(ecg)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom/ecgdatakit warn about the damage they tolerate
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_damaged_files_give_a_valid_ecg_or_an_ecg_read_error(case, fuzz_sources, tmp_path_factory):
    if missing := _needs(case.name):
        pytest.skip(f"{case.name} needs the 'formats' extra ({missing})")
    folder = tmp_path_factory.mktemp(case.name)
    for companion in case.companions:
        shutil.copy(fuzz_sources / companion, folder / companion)
    original = (fuzz_sources / case.target).read_bytes()
    target = folder / case.target
    _assert_valid_ecg(case.read(fuzz_sources / case.target))  # the intact file reads: an error fails here

    base = BASE_SEED * 10**6 + CASES.index(case) * 10**4
    for seed in range(base, base + EXAMPLES):
        target.write_bytes(damage(original, seed))
        for how, call in (("reader", lambda: case.read(target)), ("read_ecg", lambda: read_ecg(target))):
            try:
                _assert_valid_or_read_error(call)
            except BaseException as exc:
                raise AssertionError(
                    f"{case.name} via {how}: damage(original, seed={seed}) gave {type(exc).__name__}: {exc}; "
                    f"replay: AIECG_FUZZ_SEED={BASE_SEED} pytest {__file__}::"
                    f"test_damaged_files_give_a_valid_ecg_or_an_ecg_read_error[{case.name}]"
                ) from exc


def test_the_intact_file_check_fails_on_an_error(fuzz_sources, tmp_path):
    """The intact-file check is not satisfied by an ECGReadError (it was before)."""
    cut = tmp_path / "cut.xml"
    cut.write_bytes((fuzz_sources / "example-XML1.xml").read_bytes()[:1000])
    with pytest.raises(ECGReadError):
        _assert_valid_ecg(read_cardiosoft(cut))
    with pytest.raises(AssertionError):
        _assert_valid_ecg(np.zeros((12, 5000)))


def test_damage_is_replayable_from_its_seed(fuzz_sources):
    original = (fuzz_sources / "Example.scp").read_bytes()
    assert damage(original, 123) == damage(original, 123)
    variants = {damage(original, seed) for seed in range(30)}
    assert len(variants) == 30 and original not in variants
