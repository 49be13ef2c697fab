"""The input contract of a trained model: what its bundle records about the data it was trained on, and every
check where the model meets data (a prepared store, a cohort's clinical columns, a single recording).

A bundle's ``input_spec`` holds the model's leads in order, which input it reads (``input``: the median beat, the
10 s rhythm strip or both; with strips, their rate, duration and samples) and its store's sampling rate, window,
R offset, pre-processing (filters including the mains notch, beat settings) and units (:func:`input_contract`). Data
prepared otherwise is refused with one error naming the setting that differs and how to re-prepare
(:func:`check_input_contract`, :func:`check_store`); a cohort must map the clinical columns the model was trained
with (:func:`check_clinical_columns`); a recording must hold the band, leads and beats the pre-processing needs
(:func:`check_recording`). No torch here: a contract is checked before any model is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiecg.ecg import STANDARD_LEADS, normalise_lead_name
from aiecg.errors import BundleError, CohortError
from aiecg.signal.leads import DERIVED_LIMB_LEADS

if TYPE_CHECKING:
    from aiecg.data.cohort import Cohort
    from aiecg.data.features import ClinicalEncoder

MIN_RATE_BPM = 40.0
"""The slowest resting heart rate a recording must hold enough beats at (see :func:`check_recording`)."""

INPUTS = ("median", "rhythm", "both")
"""What a model reads (``aiecg train --input``): the median beat [leads, window], the rhythm strip [leads, strip
samples] (``aiecg prepare --strips``), or both joined in time [leads, window + strip samples], which the model
splits again (:class:`aiecg.models.dual.DualInput`). A bundle without ``input`` reads median beats."""

# Settings of the pre-processing that change the model's input values; QC thresholds (which records are
# usable) and the store's bookkeeping do not, so a store may differ in those. Whether a store keeps rhythm strips
# matters only to a model that reads them (checked on its own in check_input_contract).
_CONTRACT_IGNORES = {"store_beats", "chunk_size", "beats.quality", "beats.min_clean_beats", "strips"}


def input_kind(spec: Mapping[str, Any]) -> str:
    """The input a contract reads (``median`` for a bundle written before inputs were recorded)."""
    return str(spec.get("input", "median"))


def check_input_kind(kind: str) -> None:
    if kind not in INPUTS:
        raise ValueError(f"input {kind!r} is not one of {', '.join(INPUTS)}")


def input_contract(leads: Sequence[str], manifest: Mapping[str, Any], kind: str = "median", *,
                   include_paced: bool | None = None) -> dict[str, Any]:
    """The input contract a model trained on a store with this manifest keeps: its leads in order, the input it
    reads (with rhythm strips, their rate, duration and samples), and the store's sampling rate, window, R offset,
    pre-processing (filters incl. the mains notch, beat settings) and units; with ``include_paced`` (a training
    run's setting), whether paced ECGs were in its training data, so ``aiecg predict`` can flag paced recordings
    the model never saw (:func:`paced_caution`)."""
    check_input_kind(kind)
    contract = {"leads": list(leads), "input": kind, "fs": manifest["fs"], "window": manifest["window"],
                "r_offset": manifest["r_offset"], "preprocessing": manifest["preprocessing"],
                "units": manifest.get("units", "mV")}
    if kind != "median":
        strips = manifest["strips"]
        contract["strips"] = {"fs": strips["fs"], "seconds": strips["seconds"], "samples": strips["samples"]}
    if include_paced is not None:
        contract["include_paced"] = bool(include_paced)
    return contract


def paced_caution(input_spec: Mapping[str, Any], paced: str) -> str:
    """Why a prediction on a paced recording (``paced``: the chamber ``aiecg prepare`` flagged, '' when not
    paced) needs caution: the model was trained without paced ECGs (the default), or its bundle predates the
    ``include_paced`` record; '' when the recording is not paced or paced ECGs were in the training data."""
    if not paced:
        return ""
    kept = input_spec.get("include_paced")
    if kept:
        return ""
    if kept is None:
        return (f"paced ECG ({paced} pacing): this bundle does not record whether paced ECGs were in its training "
                "data (written before aiecg recorded it, or trained on a store where pacing could not be checked for "
                "every record); a paced QRS says little about LV mass, treat the "
                "prediction with caution")
    return (f"paced ECG ({paced} pacing): the model never saw a paced ECG (trained without --include-paced), so "
            "this prediction extrapolates; a paced QRS says little about LV mass, treat it with caution")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping's leaves by dotted key (``filters.notch_hz``); tuples as lists."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}


def check_input_contract(expected: Mapping[str, Any], data_spec: Mapping[str, Any], where: str, fix: str) -> None:
    """Raise :class:`BundleError` naming the first settings where ``data_spec`` (a store manifest, or the
    contract of files about to be prepared) differs from the model's contract ``expected``.

    Args:
        where: the data, as a user knows it (``store data/ext/store``).
        fix: how to re-prepare the data to match (appended to the message).
    """
    missing = [lead for lead in expected["leads"] if lead not in data_spec.get("leads", [])]
    if missing:
        raise BundleError(f"{where} lacks the leads {missing} the model reads; {fix}")
    kind = input_kind(expected)
    if "input" in data_spec and input_kind(data_spec) != kind:
        raise BundleError(f"{where}: the model reads the input '{kind}', the data '{input_kind(data_spec)}'; {fix}")
    differ = []
    if kind != "median":
        strips = data_spec.get("strips")
        if not strips:
            raise BundleError(f"{where} holds no rhythm strips, and the model reads them (input '{kind}'). {fix}")
        for key in ("fs", "seconds"):
            if strips.get(key) != expected["strips"][key]:
                differ.append((f"strips.{key}", strips.get(key), expected["strips"][key]))
    for key in ("fs", "window", "r_offset", "units"):
        if key in data_spec and key in expected and data_spec[key] != expected[key]:
            differ.append((key, data_spec[key], expected[key]))
    ours = flatten(expected.get("preprocessing", {}))
    theirs = flatten(data_spec.get("preprocessing", {}))
    for key in sorted(set(ours) | set(theirs)):
        if any(key == ignored or key.startswith(ignored + ".") for ignored in _CONTRACT_IGNORES):
            continue
        if ours.get(key) != theirs.get(key):
            differ.append((key, theirs.get(key, "unset"), ours.get(key, "unset")))
    if differ:
        text = "; ".join(f"{key} is {got} there, the model was trained with {want}" for key, got, want in differ[:4])
        raise BundleError(f"{where} was prepared with other settings than the model's input contract: {text}. {fix}")


def prepare_flags(input_spec: Mapping[str, Any]) -> str:
    """The ``aiecg prepare`` flags that reproduce a contract's pre-processing (filters, beat windows and, for a model
    that reads them, rhythm strips)."""
    pre = input_spec.get("preprocessing", {})
    flags = []
    for section in ("filters", "beats"):
        for key, value in (pre.get(section) or {}).items():
            if isinstance(value, dict):
                continue
            text = "none" if value is None else ",".join(map(str, value)) if isinstance(value, list) else value
            if isinstance(value, bool):
                flags.append(f"--{key.replace('_', '-')}" if value else f"--no-{key.replace('_', '-')}")
            else:
                flags.append(f"--{key.replace('_', '-')} {text}")
    if input_kind(input_spec) != "median":
        strips = input_spec["strips"]
        flags.append(f"--strips {strips['fs']:g} --strip-seconds {strips['seconds']:g}")
    return " ".join(flags)


def check_store(input_spec: Mapping[str, Any], manifest: Mapping[str, Any], store_root: str | Path,
                cohort_path: str | Path) -> None:
    """The store must hold what the model was trained on: its leads, rate, window and pre-processing; the error
    gives the ``aiecg prepare`` command that makes a matching store."""
    check_input_contract(input_spec, manifest, f"store {store_root}",
                         f"Re-prepare the cohort to a new store: aiecg prepare --cohort {cohort_path} --out NEW_STORE "
                         f"{prepare_flags(input_spec)}, then pass --store NEW_STORE.")


def check_clinical_columns(encoder: ClinicalEncoder | None, cohort: Cohort, cohort_path: str | Path) -> None:
    """A cohort must map exactly the clinical columns the model was trained with (same names, same kinds);
    ``encoder`` is the bundle's (None: an ECG-only model, nothing to check)."""
    if encoder is None:
        return
    expected = list(encoder.spec.columns)
    mapped = list(cohort.mapping.clinical.columns)
    missing = [c for c in expected if c not in mapped or c not in cohort.frame.columns]
    unexpected = [c for c in mapped if c not in expected]
    if missing or unexpected:
        raise CohortError(
            f"{cohort_path}: the model was trained with clinical columns {expected}; "
            f"missing here: {missing or 'none'}; unexpected here: {unexpected or 'none'}. "
            "Map the same variables under 'clinical' (rename columns in the YAML's table), or use an ECG-only model."
        )


def check_recording(input_spec: Mapping[str, Any], data_spec: Mapping[str, Any], where: str) -> None:
    """Can the bundle's pre-processing turn this recording into the input the model was trained on?

    ``data_spec`` holds the recording's ``fs`` (Hz), ``leads`` and ``duration_s``. A recording the model cannot
    serve raises, so it becomes an error row instead of a wrong number:

    - rate: the recording must hold the frequency band the training ECGs kept (up to the low-pass corner, or
      half the model's rate without one), i.e. ``fs >= 2 x band``; a 100 Hz recording lacks the QRS energy
      between 50 and 100 Hz that a model trained on 500 Hz ECGs filtered at 100 Hz has seen.
    - leads: pre-processing builds the 12 standard leads; III, aVR, aVL, aVF may be derived from I and II.
    - duration: at least ``min_clean_beats`` beats at 40 bpm, so the median beat averages as many beats as QC
      demands even at a slow rate; a model that reads rhythm strips needs the strip's duration.

    Raises:
        BundleError: naming the file, the setting that differs and what the model needs.
    """
    from aiecg.data.prepare import PrepareConfig

    prep = PrepareConfig.from_dict(input_spec["preprocessing"])
    fs = float(data_spec["fs"])
    band = prep.filters.lowpass_hz or prep.filters.target_fs / 2
    if fs < 2 * band:
        raise BundleError(
            f"{where}: recorded at {fs:g} Hz, which holds frequencies up to {fs / 2:g} Hz; the model was trained on "
            f"ECGs resampled to {prep.filters.target_fs:g} Hz keeping up to {band:g} Hz, so it needs >= {2 * band:g} "
            "Hz. Use a model trained on recordings at this rate.")
    have = {normalise_lead_name(lead) for lead in data_spec["leads"]}
    derivable = {"I", "II"} <= have
    missing = [lead for lead in STANDARD_LEADS
               if lead not in have and not (lead in DERIVED_LIMB_LEADS and derivable)]
    if missing:
        raise BundleError(
            f"{where}: lead(s) {', '.join(missing)} missing (the file has {', '.join(sorted(have))}); the model "
            f"reads {', '.join(input_spec['leads'])} from the 12 standard leads (III, aVR, aVL, aVF may be derived "
            "from I and II). Use a model trained on the leads this file has.")
    min_s = prep.beats.min_clean_beats * 60.0 / MIN_RATE_BPM
    duration = float(data_spec["duration_s"])
    if input_kind(input_spec) != "median":
        from aiecg.signal.strip import PAD_TOLERANCE_S

        seconds = float(input_spec["strips"]["seconds"])
        if duration < seconds - PAD_TOLERANCE_S - 1e-9:
            raise BundleError(
                f"{where}: {duration:.2f} s long; the model reads {seconds:g} s rhythm strips (at most "
                f"{PAD_TOLERANCE_S:g} s less). Export the full resting ECG, or use a median-beat model.")
    if duration < min_s:
        raise BundleError(
            f"{where}: {duration:.2f} s long; the model's median beat needs >= {min_s:g} s "
            f"({prep.beats.min_clean_beats} beats at {MIN_RATE_BPM:g} bpm). Export the full resting ECG.")
