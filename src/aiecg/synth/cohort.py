"""Generate a synthetic UK-Biobank-like cohort on disk: ECG files, cohort table, truth tables, YAML mapping.

Participants are drawn once, vectorised, from ``default_rng([seed, 0])``; each participant's ECG comes
from its own generator ``default_rng([seed, 1, index])``, so the files are byte-identical whatever the
number of worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.files import temp_path
from aiecg.synth.heart import HeartParams
from aiecg.synth.oracle import oracle_posterior
from aiecg.synth.population import select_cohort
from aiecg.synth.record import FIDUCIAL_COLUMNS, RecordParams, synthesise_record
from aiecg.threads import cpu_budget, use_threads

COHORT_COLUMNS: tuple[str, ...] = (
    "eid", "sex", "age", "height", "weight", "bsa", "bmi", "sbp", "dbp", "hypertension", "diabetes",
    "high_cholesterol", "alcohol", "ethnicity", "smoking", "non_hdl_chol", "total_chol", "vent_rate",
    "lvm", "ilvm", "lvedv", "ilvedv", "lvm_lvedv_ratio", "lvh", "remodelling", "ecg_file",
)
"""Columns of ``cohort.parquet``/``cohort.csv``, in order. Units: age years, height cm, weight kg, bsa m2
(Du Bois), bmi kg/m2, sbp/dbp mmHg, cholesterol mmol/L, vent_rate bpm, lvm g, ilvm g/m2, lvedv ml,
ilvedv ml/m2, lvm_lvedv_ratio g/ml."""

FIRST_EID = 1000001


@dataclass(frozen=True)
class DomainShift(RecordParams):
    """How an external cohort differs from the UK-Biobank-like default: the recording settings of
    :class:`RecordParams` (device gain, noise, mains frequency, band limits, electrode placement; see there),
    plus the population's.

    Attributes:
        population: shift towards an older, heavier, more hypertensive population (about one SD per unit).
        lvh_prevalence: the external cohort's LVH share, used unless ``SynthConfig.lvh_prevalence`` is given
            (an explicit ``--lvh-prevalence`` wins).
    """

    population: float = 0.0
    lvh_prevalence: float | None = None

    def record_settings(self) -> dict[str, Any]:
        """The shift's recording settings, for ``RecordParams(**settings)``; population and prevalence shape the
        cohort, not the recording."""
        return {item.name: getattr(self, item.name) for item in fields(RecordParams)}


EXTERNAL_SHIFT = DomainShift(gain=0.8, noise=2.0, population=1.0, mains_hz=60.0, lowpass_hz=40.0, highpass_hz=0.5,
                             electrode_shift=0.5, electrode_shift_sd=0.5, electrode_sd=2.0, lvh_prevalence=0.3)
"""The default external cohort: another country's device and population, recorded in routine care.

Device: the electrocardiograph reads 20% lower voltages, band-limits to 0.5-40 Hz (a muscle filter, which also
blunts notches and R peaks), with 60 Hz mains and twice the noise. Placement: the internal cohort is a research
protocol with trained staff; routine care places the chest electrodes elsewhere on every recording (Wenger &
Kligfield 1996, J Electrocardiol 29:179: on average 2.9 cm from the anatomical sites, V4-V6 low and wide), so
they sit half a lead spacing lateral on average with a per-record SD of half a spacing, and their gain and tilt
errors are twice the protocol's (day-to-day CV of R in V5 81% with unmarked against 43% with skin-marked
positions, lead I 30% against 26%: a randomised study of 276 hypertensive patients, J Cardiovasc Med 2006;
7:812). Population: older, heavier and more hypertensive (about one SD) with 30% LVH.

Why per-record variation: a ranking measure (AUROC) is unchanged by any shift that moves every record's score
the same way, so a systematic gain, filter or electrode offset breaks calibration and fixed cut-offs but barely
a model's ranking; what lowers it is variation between records that the training data never showed."""


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`generate_cohort` builds.

    Attributes:
        n: number of participants.
        seed: the one seed everything derives from.
        lvh_prevalence: None for the natural prevalence (~1.5%), or the LVH share to enrich to by
            rejection sampling of participants (see :func:`aiecg.synth.population.select_cohort`).
        fmt: "cardiosoft" (UK Biobank XML) or "wfdb".
        shift: a DomainShift for an external cohort, or None.
        workers: processes used to synthesise and write the ECGs (1 = in this process).
        name: the cohort name written in ``cohort.yaml``.
        missing_share: share of participants with missing cholesterol values (NaN).
        first_eid: the first participant id; give two cohorts that are used together (an internal and an
            external one, pooled for pre-training) disjoint id ranges.
    """

    n: int = 2000
    seed: int = 0
    lvh_prevalence: float | None = None
    fmt: str = "cardiosoft"
    shift: DomainShift | None = None
    workers: int = 1
    name: str = "synthetic-ukb"
    missing_share: float = 0.015
    first_eid: int = FIRST_EID
    heart: HeartParams = field(default_factory=HeartParams)


@dataclass(frozen=True)
class SynthResult:
    """Paths of everything :func:`generate_cohort` wrote."""

    out_dir: Path
    table: Path
    table_csv: Path
    truth: Path
    beats_truth: Path
    ecg_dir: Path
    cohort_yaml: Path
    n: int


def _ecg_name(eid: int, fmt: str) -> str:
    return f"ecg/{eid}_20205_2_0.{'xml' if fmt == 'cardiosoft' else 'hea'}"


def _task(args: tuple[dict[str, Any], int, int, str, str, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """Synthesise and write one participant's ECG (runs in a worker process)."""
    row, index, seed, out_dir, fmt, record_kw, heart_kw = args
    rng = np.random.default_rng([seed, 1, index])
    rec = synthesise_record(row, rng, RecordParams(**record_kw), HeartParams(**heart_kw))
    eid = int(row["eid"])
    path = Path(out_dir) / _ecg_name(eid, fmt)
    ecg = ECG.from_array(rec.signal, STANDARD_LEADS, 500.0, record_id=f"{eid}_20205_2_0",
                         median=rec.median, median_fs=500.0)
    if fmt == "cardiosoft":
        from aiecg.io.cardiosoft import write_cardiosoft

        patient = {"pid": str(eid), "age": int(row["age"]), "sex": "male" if row["sex"] == 1 else "female",
                   "height_cm": int(round(row["height"])), "weight_kg": round(float(row["weight"]), 1)}
        write_cardiosoft(path, ecg, patient=patient, measurements=rec.measurements,
                         lead_measurements=rec.lead_measurements)
    else:
        from aiecg.io.wfdb import write_wfdb

        write_wfdb(path, ecg, comments=[f"age: {int(row['age'])}", f"sex: {'male' if row['sex'] == 1 else 'female'}"])
    return {"eid": eid, "vent_rate": rec.measurements["VentricularRate"], "truth": rec.truth,
            "r_peaks": rec.r_peaks, "is_ectopic": rec.is_ectopic, "fiducials": rec.fiducials}


def _run(tasks: list[tuple], workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        yield from map(_task, tasks)
        return
    threads = cpu_budget().per_worker(workers)  # each worker's share of the CPU budget (aiecg.threads)
    with ProcessPoolExecutor(max_workers=workers, initializer=use_threads, initargs=(threads,)) as pool:
        yield from pool.map(_task, tasks, chunksize=max(1, min(32, len(tasks) // (4 * workers) or 1)))


def _write_atomic(path: Path, write) -> None:
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cohort_mapping(cfg: SynthConfig, table: str = "cohort.parquet") -> dict[str, Any]:
    """The ``cohort.yaml`` mapping the data layer reads (paths relative to the YAML file)."""
    return {
        "name": cfg.name,
        "table": table,
        "id_column": "eid",
        "sex": {"column": "sex", "male": 1, "female": 0},
        "ecg": {"column": "ecg_file", "format": cfg.fmt},
        "targets": {"MASS": "lvm", "INDEXED_MASS": "ilvm", "VOL": "lvedv", "INDEXED_VOL": "ilvedv",
                    "MASS_VOL_RATIO": "lvm_lvedv_ratio", "LVH": "lvh", "HN": "remodelling"},
        "clinical": {
            "binary": ["hypertension", "sex", "diabetes", "high_cholesterol", "alcohol", "ethnicity"],
            "categorical": {"smoking": [0, 1, 2]},
            "continuous": ["sbp", "dbp", "age", "bmi", "non_hdl_chol", "total_chol", "vent_rate"],
        },
    }


def generate_cohort(out_dir: str | Path, cfg: SynthConfig | None = None, progress: bool = False) -> SynthResult:
    """Write a synthetic cohort to ``out_dir`` and return the paths.

    Writes ``ecg/{eid}_20205_2_0.xml`` (or ``.hea``/``.dat``), ``cohort.parquet`` and ``cohort.csv``
    (:data:`COHORT_COLUMNS`), ``truth.parquet`` (latent per-participant quantities and noise-free voltages),
    ``truth_beats.parquet`` (per beat: ``eid``, ``record_id``, ``beat``, the R-peak ``sample`` index, ``is_ectopic``
    and the true fiducials :data:`~aiecg.synth.record.FIDUCIAL_COLUMNS` in seconds) and ``cohort.yaml``.
    The truth table also holds the oracle (:mod:`aiecg.synth.oracle`): never in the cohort table.
    """
    cfg = cfg or SynthConfig()
    if cfg.fmt not in ("cardiosoft", "wfdb"):
        raise ValueError(f"unknown ECG format {cfg.fmt!r}; use 'cardiosoft' or 'wfdb'")
    shift = cfg.shift or DomainShift()
    out = Path(out_dir)
    (out / "ecg").mkdir(parents=True, exist_ok=True)

    prevalence = cfg.lvh_prevalence if cfg.lvh_prevalence is not None else shift.lvh_prevalence
    people = select_cohort(cfg.n, np.random.default_rng([cfg.seed, 0]), prevalence, shift.population)
    people.insert(0, "eid", np.arange(cfg.first_eid, cfg.first_eid + len(people), dtype=np.int64))
    missing_rng = np.random.default_rng([cfg.seed, 2])
    chol_missing = missing_rng.random(len(people)) < cfg.missing_share
    people.loc[chol_missing, ["total_chol", "non_hdl_chol"]] = np.nan

    record_kw = shift.record_settings()
    heart_kw = asdict(cfg.heart)
    needed = ["eid", "sex", "age", "bmi", "height", "weight", "_mass_z", "_heart_rate", "_sbp_untreated", "_vol_z"]
    rows = people[needed].to_dict("records")
    tasks = [(row, i, cfg.seed, str(out), cfg.fmt, record_kw, heart_kw) for i, row in enumerate(rows)]
    results = _run(tasks, cfg.workers)
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, total=len(tasks), desc="synthetic ECGs", unit="ecg")
    vent_rate, truth_rows, beat_frames = [], [], []
    for res in results:
        vent_rate.append(float(res["vent_rate"]))
        truth_rows.append({"eid": res["eid"], **res["truth"]})
        beat_frames.append(pd.DataFrame({
            "eid": res["eid"], "record_id": f"{res['eid']}_20205_2_0", "beat": np.arange(res["r_peaks"].size),
            "sample": res["r_peaks"].astype(np.int64), "is_ectopic": res["is_ectopic"].astype(bool),
            **{k: res["fiducials"][k] for k in FIDUCIAL_COLUMNS}}))

    people["vent_rate"] = np.asarray(vent_rate, dtype=np.float64)
    people["ecg_file"] = [_ecg_name(int(e), cfg.fmt) for e in people["eid"]]
    table = people[list(COHORT_COLUMNS)].copy()
    truth = pd.DataFrame(truth_rows)
    latent = people[["eid", "lvm", "ilvm", "lvh", "_mass_z", "_sbp_untreated", "_heart_rate", "_vol_z"]].rename(
        columns={"_mass_z": "mass_z", "_sbp_untreated": "sbp_untreated", "_heart_rate": "heart_rate_latent",
                 "_vol_z": "volume_z"})
    truth = latent.merge(truth, on="eid", how="left")
    oracle = oracle_posterior(table, truth, cfg.heart, shift.population, prevalence, electrode_sd=shift.electrode_sd)
    truth = truth.merge(oracle, on="eid", how="left")
    beats = pd.concat(beat_frames, ignore_index=True) if beat_frames else pd.DataFrame(
        {"eid": [], "record_id": [], "beat": [], "sample": [], "is_ectopic": [], **{k: [] for k in FIDUCIAL_COLUMNS}})

    paths = SynthResult(out_dir=out, table=out / "cohort.parquet", table_csv=out / "cohort.csv",
                        truth=out / "truth.parquet", beats_truth=out / "truth_beats.parquet",
                        ecg_dir=out / "ecg", cohort_yaml=out / "cohort.yaml", n=len(table))
    _write_atomic(paths.table, lambda p: table.to_parquet(p, index=False))
    _write_atomic(paths.table_csv, lambda p: table.to_csv(p, index=False, float_format="%.6g"))
    _write_atomic(paths.truth, lambda p: truth.to_parquet(p, index=False))
    _write_atomic(paths.beats_truth, lambda p: beats.to_parquet(p, index=False))
    _write_atomic(paths.cohort_yaml, lambda p: p.write_text(yaml.safe_dump(cohort_mapping(cfg), sort_keys=False)))
    return paths
