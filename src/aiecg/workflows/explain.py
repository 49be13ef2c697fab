"""``aiecg explain``: a saved bundle on a cohort, or on one ECG file -> attributions.npz, explain.json, waves.csv
and figures.

Integrated gradients on the ECG (baseline: the mean median beat of the participant's sex in the reference
population, :mod:`aiecg.explain.baselines`) and the clinical inputs (baseline: the encoded typical training
participant, the encoder's fill values) together, with the convergence delta; exact class activation maps for the
FCN; the model-randomisation sanity check of those maps (Adebayo et al., NeurIPS 2018; :mod:`aiecg.explain.sanity`)
on a seeded sample, stored in ``explain.json``; and the attribution by wave and lead (``waves.csv``,
:mod:`aiecg.explain.waves`), on a synthetic cohort beside where the generator puts the mass effect
(:mod:`aiecg.explain.truth`). ``aiecg report`` renders the folder when it is given.

One ECG file (any readable format) is explained against the training split of the bundle's cohort (``--cohort``),
whose mean beat per sex is the baseline; its clinical values come from a one-row table (``--clinical``) or are
imputed by the model's encoder, and ``explain.json`` says which.

The files are one set: an earlier run's ``explain.json`` and ``figures/`` go first, ``explain.json`` is written
after the attributions and waves it describes, and the figures are drawn into a hidden folder renamed to
``figures/`` when the last is saved; a killed run leaves no summary, or a summary without figures, never a
partial set of figures.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiecg.conventions import decode_sex
from aiecg.csvfile import read_csv, write_csv
from aiecg.data.cohort import ID
from aiecg.data.dataset import build_arrays
from aiecg.data.features import encoder_sex_code, header_sex_code
from aiecg.explain.attributions import ExplainError, fcn_cam, integrated_gradients, upsample
from aiecg.explain.baselines import SexMeanBaseline, streamed_sex_mean_baseline
from aiecg.explain.sanity import randomisation_check
from aiecg.explain.truth import effect_by_wave, truth_table
from aiecg.explain.waves import FIDUCIALS, input_part_shares, truth_summary, wave_summary
from aiecg.files import atomic_write, atomic_write_text, check_output
from aiecg.predict import predict
from aiecg.runio import partial_dir, publish
from aiecg.workflows.bundled import open_bundled


@dataclass
class Subjects:
    """The participants to explain, as model inputs, with what the summaries need.

    Attributes:
        fiducials: [n, 4] sample indices of P onset, QRS onset, QRS offset and T end in each median beat.
        truth: the synthetic generator's latent truth per participant (None for real data).
        target: the reference (CMR) value of the model's first output per participant, in target units (NaN where
            unknown, e.g. one ECG file).
        described: what ``explain.json`` records about the input (cohort, split or file, imputed values).
    """

    ids: np.ndarray
    ecg: np.ndarray
    meta: np.ndarray
    is_male: np.ndarray
    fiducials: np.ndarray
    baseline: SexMeanBaseline
    truth: pd.DataFrame | None
    target: np.ndarray
    described: dict[str, Any]


def baseline_of(bundle: Any) -> str:
    """What the integrated-gradients baseline averages for this bundle's input."""
    return {"rhythm": "rhythm strip", "both": "median beat and rhythm strip"}.get(bundle.input_kind, "median beat")


def median_samples_of(bundle: Any) -> int | None:
    """Where the median beat ends in the input of a model of both inputs (median beat, then strip, joined in
    time); None for a model of one input."""
    if bundle.input_kind != "both":
        return None
    return int(bundle.n_samples) - int(bundle.input_spec["strips"]["samples"])


REFERENCE_CHUNK = 2048
"""Participants of the reference population loaded at a time for the baseline (2,048 rhythm strips: 164 MB)."""


def reference_baseline(store: Any, frame: pd.DataFrame, ids: np.ndarray, bundle: Any, source: str,
                       chunk: int = REFERENCE_CHUNK) -> SexMeanBaseline:
    """The per-sex mean input of the reference participants ``ids``, read from the store ``chunk`` participants at a
    time (a training split's rhythm strips do not fit in memory at once)."""
    parts = ((a.ecg, a.is_male) for a in (
        build_arrays(store, frame, ids[start:start + chunk], bundle.target, bundle.input_spec["leads"], None,
                     bundle.input_kind) for start in range(0, len(ids), chunk)))
    return streamed_sex_mean_baseline(parts, source, baseline_of(bundle))


def typical(outputs: np.ndarray, high: bool) -> int:
    """The participant whose output is nearest the median of the highest (or lowest) fifth."""
    cut = np.quantile(outputs, 0.8 if high else 0.2)
    group = np.flatnonzero(outputs >= cut if high else outputs <= cut)
    return int(group[np.argmin(np.abs(outputs[group] - np.median(outputs[group])))])


def explain_bundle(bundle_path: str | Path, cohort_path: str | Path, store_path: str | Path | None, out: str | Path,
                   split: str = "test", n_steps: int = 50, max_participants: int = 500, seed: int = 0,
                   figures: bool = True, sanity_participants: int = 50, ecg_file: str | Path | None = None,
                   clinical: str | Path | None = None, fmt: str | None = None) -> dict[str, Any]:
    """Explain a bundle's predictions for a cohort's test split (``split='test'``, checked against the bundle's
    fingerprint) or every usable participant (``'all'``), at most ``max_participants`` (a seeded sample); then
    check the maps by cascading model randomisation on a seeded sample of at most ``sanity_participants`` of them
    (0: no check). With ``ecg_file``, explain that one ECG instead, against the cohort's training split."""
    if n_steps < 1:
        raise ExplainError(f"--steps must be at least 1 (integration steps of integrated gradients), got {n_steps}")
    if max_participants < 2:
        raise ExplainError(f"--max-participants must be at least 2, got {max_participants}")
    check_output(out)
    bundled = open_bundled(bundle_path, cohort_path, store_path,
                           require_targets=split == "test" or ecg_file is not None)  # the split as trained
    bundle, frame, store = bundled.bundle, bundled.frame, bundled.store
    if ecg_file is not None:
        subjects = _file_subjects(bundled, ecg_file, clinical, fmt)
        return _explain(bundled.bundle, subjects, out, n_steps, seed, figures, sanity_participants)
    if split == "test":
        splits = bundled.training_splits()
        ids = np.asarray(splits.test, dtype=str)
        reference_ids, reference = np.asarray(splits.train, dtype=str), f"training split of {cohort_path}"
    elif split == "all":
        ids = frame[ID].to_numpy(dtype=str)
        reference_ids, reference = ids, f"every usable participant of {cohort_path}"
    else:
        raise ExplainError(f"split must be 'test' or 'all', got {split!r}")
    if len(ids) > max_participants:
        ids = np.sort(np.random.default_rng(seed).choice(ids, max_participants, replace=False))
    if len(ids) < 2:
        raise ExplainError(f"{cohort_path}: only {len(ids)} participants to explain; need at least 2")
    arrays = bundled.arrays(ids)
    truth = truth_table(cohort_path)
    if truth is not None:
        truth = frame.set_index(ID).loc[ids, ["age", "bmi"]].join(truth.astype({"eid": str}).set_index("eid"))
        truth["sex"] = arrays.is_male
    subjects = Subjects(
        ids=arrays.ids.astype(str), ecg=arrays.ecg, meta=arrays.meta, is_male=arrays.is_male,
        fiducials=store.index.set_index("id").loc[ids, list(FIDUCIALS)].to_numpy(float),
        baseline=reference_baseline(store, frame, reference_ids, bundle, reference), truth=truth,
        target=arrays.target[:, 0].astype(float) if arrays.target.size else np.full(len(ids), np.nan),
        described={"bundle": str(bundle_path), "cohort": str(cohort_path), "split": split,
                   "cohort_name": str(bundled.cohort.mapping.name)})
    return _explain(bundle, subjects, out, n_steps, seed, figures, sanity_participants)


def _explain(bundle: Any, subjects: Subjects, out: str | Path, n_steps: int, seed: int, figures: bool,
             sanity_participants: int) -> dict[str, Any]:
    """Attributions, maps, their randomisation check, the wave summaries and the files, for ``subjects``."""
    spec, arrays, ids = bundle.target, subjects, subjects.ids
    model = bundle.build_model()
    meta_baseline = None
    if bundle.encoder is not None:
        meta_baseline = bundle.encoder.transform(pd.DataFrame([bundle.encoder.fill]))[0]
    baseline = subjects.baseline
    ecg_baseline = baseline.for_participants(arrays.is_male)
    attr = integrated_gradients(model, arrays.ecg, arrays.meta, ecg_baseline=ecg_baseline,
                                meta_baseline=meta_baseline, n_steps=n_steps)

    strip = bundle.input_kind == "rhythm"  # time from the strip's start, and no waves (no fiducials in a strip)
    median_samples = median_samples_of(bundle)  # both inputs: the waves in the beat, the leads over the strip
    beat = slice(None, median_samples)
    fs, r_offset = float(bundle.input_spec["fs"]), int(bundle.input_spec["r_offset"])
    if strip:
        fs, r_offset = float(bundle.input_spec["strips"]["fs"]), 0
    arrays_out: dict[str, np.ndarray] = {
        "ids": arrays.ids.astype(str), "leads": np.asarray(bundle.input_spec["leads"], dtype=str),
        "features": np.asarray(bundle.encoder.feature_names if bundle.encoder else [], dtype=str),
        "time_ms": ((np.arange(median_samples or arrays.ecg.shape[2]) - r_offset) * 1000.0 / fs).astype(np.float32),
        "ecg": arrays.ecg.astype(np.float32), "ecg_attr": attr.ecg, "ecg_baseline": baseline.beats,
        "is_male": arrays.is_male.astype(np.float32), "meta": arrays.meta.astype(np.float32),
        "meta_attr": attr.meta, "outputs": attr.outputs, "baseline_outputs": attr.baseline_outputs,
        "delta": attr.delta, "typical_low": np.asarray(typical(attr.outputs, False)),
        # each participant's prediction through THE prediction loop and the reference value, in target units
        "predicted": predict(model, arrays.ecg, arrays.meta, spec, bundle.scaling)[:, 0].astype(np.float32),
        "true": np.asarray(subjects.target, np.float32),
        "typical_high": np.asarray(typical(attr.outputs, True)),
    }
    if median_samples is not None:  # the strip's own clock after the beat's
        strip_fs = float(bundle.input_spec["strips"]["fs"])
        arrays_out["median_samples"] = np.asarray(median_samples)
        arrays_out["strip_time_ms"] = (np.arange(arrays.ecg.shape[2] - median_samples) * 1000.0
                                       / strip_fs).astype(np.float32)
    if len(ids) == 1:  # one ECG: its own figure, not the typical of a fifth
        arrays_out["single"] = arrays_out.pop("typical_low")
        del arrays_out["typical_high"]
    is_fcn = hasattr(model, "blocks") and bundle.model_name.startswith("fcn")
    if is_fcn:
        cam, rest = fcn_cam(model, arrays.ecg, arrays.meta)
        arrays_out["cam"] = upsample(cam, arrays.ecg.shape[2]).astype(np.float32)
        arrays_out["cam_rest"] = rest
    sanity, randomised = None, []
    fiducials = subjects.fiducials
    if sanity_participants > 0:
        pick = np.sort(np.random.default_rng(seed).choice(len(ids), min(sanity_participants, len(ids)),
                                                          replace=False))
        sanity = randomisation_check(model, arrays.ecg[pick], arrays.meta[pick], attr.ecg[pick],
                                     meta_baseline=meta_baseline, ecg_baseline=ecg_baseline[pick],
                                     trained_cam=arrays_out["cam"][pick] if is_fcn else None,
                                     fiducials=None if strip else fiducials[pick],
                                     lead_contributions=strip or median_samples is not None,
                                     median_samples=median_samples, n_steps=n_steps, seed=seed,
                                     randomised_maps=randomised)
    leads = [str(lead) for lead in bundle.input_spec["leads"]]
    waves = wave_summary(attr.ecg[:, :, beat], fiducials, leads, seed=seed) if not strip else None
    if randomised and waves is not None:  # the same summary of the fully randomised model's maps: the input alone
        random_waves = wave_summary(randomised[0][:, :, beat], fiducials[pick], leads, seed=seed)
        random_columns = {"share": "random_share", "share_low": "random_low", "share_high": "random_high",
                          "net_share": "random_net_share", "net_share_low": "random_net_low",
                          "net_share_high": "random_net_high"}
        waves = waves.merge(random_waves[["lead", "wave", *random_columns]].rename(columns=random_columns),
                            on=["lead", "wave"], how="left")
    truth = subjects.truth
    if truth is not None and waves is not None:
        waves = waves.merge(truth_summary(effect_by_wave(truth, leads, seed), leads, seed), on=["lead", "wave"],
                            how="left")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "explain.json").unlink(missing_ok=True)  # an earlier run's summary never describes new attributions
    shutil.rmtree(out / "figures", ignore_errors=True)  # nor do its figures
    if waves is not None:
        write_csv(waves, out / "waves.csv")
    else:
        (out / "waves.csv").unlink(missing_ok=True)
    with atomic_write(out / "attributions.npz", "wb") as handle:
        np.savez_compressed(handle, **arrays_out)
    delta = np.abs(attr.delta)
    units = f"standardised {spec.name}" if spec.is_regression else "logit"
    summary: dict[str, Any] = {
        "method": "integrated gradients (captum, Gauss-Legendre)", "n_steps": n_steps,
        "baselines": {"ecg": baseline.to_dict(),
                      "clinical": "encoded fill values of the training encoder" if bundle.encoder else "none"},
        **subjects.described, "n": int(len(ids)), "output_units": units,
        "target": {"name": spec.name, "stem": spec.stem, "kind": spec.kind.value,
                   "arrays": "predicted: the model's prediction in target units (probability for LVH); true: the "
                             "cohort's reference (CMR) value, NaN where unknown"}, "attributions": "attributions.npz",
        "model": f"{bundle.model_name} ({spec.name})",
        "convergence_delta": {"median_abs": float(np.median(delta)), "max_abs": float(delta.max()),
                              "mean_abs_output_change": float(np.mean(np.abs(attr.outputs - attr.baseline_outputs)))},
        "mean_abs_attribution_per_lead": dict(zip(arrays_out["leads"].tolist(),
                                                  np.abs(attr.ecg).sum(axis=2).mean(axis=0).tolist())),
        "mean_abs_attribution_per_feature": dict(zip(arrays_out["features"].tolist(),
                                                     np.abs(attr.meta).mean(axis=0).tolist())),
        "cam": bool(is_fcn), "input": bundle.input_kind,
        "waves": None if waves is None else {
                  "file": "waves.csv", "fiducials": "global (IEC 60601-2-25) fiducials of each participant's "
                  "stored median beat: P onset to QRS onset, QRS onset to offset, QRS offset to T end",
                  "randomised": "random_* columns: the same shares from the fully randomised model of the sanity "
                                "check, on its sample" if randomised else None,
                  "generator_truth": truth is not None},
        **({"time": "ms from the start of the rhythm strip"} if strip else {}),
        **({"inputs": {"median_samples": median_samples,
                       "time": "time_ms: ms from the R peak of the median beat (its first median_samples samples); "
                               "strip_time_ms: ms from the start of the rhythm strip (the rest)",
                       "net_contribution_share": input_part_shares(attr.ecg, median_samples, seed=seed),
                       "share": "each input's share of the participant's |net contribution| (signed sum of its "
                                "attribution), mean over participants [estimate, 95% bootstrap interval]"}}
           if median_samples is not None else {}),
        "randomisation_check": sanity,
    }
    atomic_write_text(out / "explain.json", json.dumps(summary, indent=2))  # marks a complete set
    if figures:
        from aiecg.report.figures import explanation_plots
        from aiecg.report.runs import load_run
        from aiecg.report.style import save_figure

        work = partial_dir(out / "figures")  # drawn beside, renamed into place whole: never a partial set
        shutil.rmtree(work, ignore_errors=True)
        try:
            for plot in explanation_plots(load_run(out)):
                if plot.figure is not None:
                    save_figure(plot.figure, work, plot.name)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        work.mkdir(exist_ok=True)
        publish(work, out / "figures")
    return summary


def _file_subjects(bundled: Any, ecg_file: str | Path, clinical: str | Path | None, fmt: str | None) -> Subjects:
    """One ECG file as the model's input: read and pre-processed as the bundle's training ECGs were (its input
    contract checked first), clinical values from a one-row table or imputed, the baseline from the cohort's
    training split."""
    from aiecg.contract import check_recording
    from aiecg.data.prepare import PrepareConfig, model_input_of, prepare_record
    from aiecg.errors import BundleError
    from aiecg.io import read_ecg

    bundle = bundled.bundle
    path = Path(ecg_file)
    values, imputed, table_sex = _clinical_row(bundled, clinical, path)  # a table that cannot serve: refused first
    ecg = read_ecg(path, format=fmt)
    try:
        check_recording(bundle.input_spec, {"fs": ecg.fs, "leads": ecg.leads, "duration_s": ecg.duration_s},
                        str(path))
    except BundleError as exc:
        raise ExplainError(str(exc)) from None
    result = prepare_record(path.stem, str(path), fmt, PrepareConfig.for_model(bundle.input_spec), ecg=ecg)
    if result["status"] != "ok":
        raise ExplainError(f"{path}: {result['status']} ({result['reason']}); an ECG the model can read is "
                           "needed: check the recording, or explain another ECG")
    median = model_input_of(result, bundle.input_spec)[None]
    sex, values, imputed = _sex_for_encoder(bundled, values, imputed, table_sex,
                                            decode_sex(ecg.patient.get("sex"), 1, 0))
    meta = (bundle.encoder.transform(pd.DataFrame([{c: values.get(c, np.nan) for c in bundle.encoder.spec.columns}]))
            if bundle.encoder is not None else np.zeros((1, 0), np.float32))  # a missing value: the encoder's fill
    splits = bundled.training_splits()
    return Subjects(
        ids=np.asarray([path.stem]), ecg=median, meta=np.asarray(meta, np.float32), is_male=np.asarray([sex]),
        fiducials=np.asarray([[float(result.get(k, np.nan)) for k in FIDUCIALS]]),
        baseline=reference_baseline(bundled.store, bundled.frame, np.asarray(splits.train, dtype=str), bundle,
                                    f"training split of {bundled.cohort_path}"),
        truth=None, target=np.full(1, np.nan),
        described={"bundle": str(bundled.bundle_path), "cohort": str(bundled.cohort_path), "split": "one file",
                   "ecg_file": str(path), "cohort_name": path.name, "sex": "unknown" if not np.isfinite(sex)
                   else ("male" if sex == 1 else "female"), "imputed_clinical_values": imputed})


def _sex_for_encoder(bundled: Any, values: dict[str, Any], imputed: list[str], table_sex: float,
                     header_sex: float) -> tuple[float, dict[str, Any], list[str]]:
    """The one ECG's sex (1 male, 0 female, NaN unknown): the clinical table's, else the ECG header's; and the
    clinical values with the sex column set to the encoder's own code for that sex, as ``aiecg predict`` does
    (:func:`aiecg.data.features.encoder_sex_code`, :func:`~aiecg.data.features.header_sex_code`), so that the
    network gets the sex the baseline and ``explain.json`` use, not a raw text or the encoder's imputed mode."""
    mapping, encoder = bundled.cohort.mapping, bundled.bundle.encoder
    column, male, female = mapping.sex_column, mapping.male_code, mapping.female_code
    values = dict(values)
    if np.isfinite(table_sex):
        if column in values:
            values[column] = encoder_sex_code(encoder, column, table_sex, values[column], male, female)
        return table_sex, values, imputed
    code = header_sex_code(encoder, column, header_sex, table_sex, values.get(column, math.nan), male, female)
    if pd.notna(code):
        values[column] = code
        imputed = [c for c in imputed if c != column]
    return header_sex, values, imputed


def _clinical_row(bundled: Any, clinical: str | Path | None, path: Path) -> tuple[dict[str, Any], list[str], float]:
    """The clinical values of the one ECG, the model's clinical columns that are missing there (imputed by the
    encoder) and its sex there (decoded with the cohort YAML's sex column and codes, or the words male/female;
    NaN where the table has none).

    The table's row is the one whose first column (its id column) is the file's stem, or the part of it before
    the first ``_`` (UK Biobank's ``{eid}_20205_2_0``); a one-row table without an id column (its first column
    one of the model's clinical columns or the sex column) serves any file."""
    bundle, mapping = bundled.bundle, bundled.cohort.mapping
    columns = list(bundle.encoder.spec.columns) if bundle.encoder is not None else []
    if clinical is None:
        return {}, columns, math.nan
    table = read_csv(clinical)
    names = {path.stem, path.stem.split("_")[0]}
    has_id = len(table.columns) > 0 and table.columns[0] not in {*columns, mapping.sex_column}
    if len(table) != 1 or has_id:
        ids = table.iloc[:, 0].astype(str).str.strip() if len(table.columns) else pd.Series([], dtype=str)
        table = table[ids.isin(names)]
        if len(table) != 1:
            raise ExplainError(f"{clinical}: {len(table)} rows for {path.name}; give one row whose first column "
                               f"(the id) holds {path.stem!r}, or a one-row table without an id column (the model's "
                               "clinical columns only)")
    row = table.iloc[0].to_dict()
    values = {c: row[c] for c in columns if c in row and pd.notna(row[c])}
    raw = row.get(mapping.sex_column, math.nan)
    sex = decode_sex(raw, mapping.male_code, mapping.female_code) if pd.notna(raw) else math.nan
    if pd.notna(raw) and not np.isfinite(sex):
        raise ExplainError(f"{clinical}: sex {raw!r} in column '{mapping.sex_column}' is neither the cohort's male "
                           f"code {mapping.male_code!r} nor its female code {mapping.female_code!r} (nor male/female); "
                           "correct it, or leave it empty to use the ECG header's sex")
    return values, [c for c in columns if c not in values], sex
