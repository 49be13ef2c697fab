"""Read what a run saved: a training run, a fine-tuning run, an ``aiecg evaluate`` folder or an ``aiecg explain``
folder. Nothing here predicts, opens a bundle or a store: every number shown in a report comes from these files,
or from what ``workflows/report.py`` hands over (:class:`BundleInfo`, the median-beat summaries, curves a run did
not save).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from aiecg.csvfile import read_csv
from aiecg.data.cohort import ID, Cohort, load_cohort
from aiecg.data.targets import TargetSpec, target_spec
from aiecg.errors import AiecgError

EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss")
"""The columns of ``epochs.csv`` the report draws (``aiecg.train.loop`` writes them; not imported: no torch)."""


class ReportError(AiecgError):
    """A folder given to ``aiecg report`` holds no results it can render."""


@dataclass(frozen=True)
class BundleInfo:
    """What the report shows of a bundle (plain values: the report never loads one; ``workflows/report.py`` does).

    Attributes:
        n_weights: number of trained parameters; clinical_columns: the encoder's input columns (empty without).
    """

    model_name: str
    model_kwargs: dict[str, Any]
    n_weights: int
    n_leads: int
    n_samples: int
    n_meta: int
    input_spec: dict[str, Any]
    target: TargetSpec
    clinical_columns: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class RunData:
    """Everything one run folder saved, loaded for rendering.

    Attributes:
        kind: ``train``, ``finetune``, ``evaluate`` (an ``aiecg evaluate`` folder) or ``explain``.
        epochs: (stage label, epochs table) per training stage; one entry for a plain run.
        notes: what could not be read and why (shown in the report instead of the missing panels).
    """

    path: Path
    label: str
    kind: str
    metrics: dict[str, Any] = field(default_factory=dict)
    results: pd.DataFrame | None = None
    results_val: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    comparison_regression: pd.DataFrame | None = None
    comparison_scores: pd.DataFrame | None = None
    decision_curve: pd.DataFrame | None = None
    reclassification: pd.DataFrame | None = None  # reclassification.csv: NRI against each criterion
    roc_curves: pd.DataFrame | None = None
    roc_band: pd.DataFrame | None = None
    pr_curves: pd.DataFrame | None = None  # pr_curves.csv: at the sample's and the target prevalence
    pr_band: pd.DataFrame | None = None
    probability_calibration: pd.DataFrame | None = None  # probability_calibration.csv
    regression_calibration: pd.DataFrame | None = None
    lr_curve: pd.DataFrame | None = None
    lr_cutoffs: pd.DataFrame | None = None
    calibration_curve: pd.DataFrame | None = None  # calibration_curve.csv: overall and by sex
    proportional_bias: dict[str, Any] | None = None
    epochs: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    exclusions: pd.DataFrame | None = None
    splits: dict[str, list[str]] | None = None
    config: dict[str, Any] | None = None
    bundle: BundleInfo | None = None
    bundle_path: Path | None = None
    cohort: Cohort | None = None
    store_path: Path | None = None
    median_beats: dict[str, Any] | None = None
    explain: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> TargetSpec | None:
        if self.bundle is not None:
            return self.bundle.target
        name = self.metrics.get("test", {}).get("target")
        return target_spec(name) if name else None

    @property
    def cohort_name(self) -> str:
        folder = Path(str(self.metrics.get("cohort", "?"))).parent.name or "?"
        if self.cohort is not None:  # the folder too: two cohorts may carry one name (a synthetic shifted copy)
            return f"{self.cohort.mapping.name} ({folder})" if folder != self.cohort.mapping.name else folder
        return folder

    @property
    def posthoc(self) -> dict[str, Any]:
        return self.metrics.get("posthoc") or {}


def _csv(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        table = read_csv(path, dtype={"eid": str, "id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not a readable CSV ({exc}); re-run the step that wrote it") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ReportError(f"{path} lacks the column(s) {missing}; re-run the step that wrote it")
    return table


def _mapping(path: Path) -> dict[str, Any]:
    """A run's JSON or YAML file (metrics, splits, config, explain), which must hold a mapping."""
    try:
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ReportError(f"{path} is not valid {path.suffix[1:].upper()} ({first}); re-run the step that wrote it"
                          ) from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} holds a {type(data).__name__}, not a mapping; re-run the step that wrote it")
    return data


EXPLAIN_ARRAYS = ("leads", "features", "time_ms", "ecg_attr", "ecg", "ids")
"""The arrays of ``attributions.npz`` (``aiecg explain``) that every report of it draws."""


class NpzArrays(dict):
    """The arrays of an ``.npz`` file, read into memory (``files`` names them, as ``numpy.lib.npyio.NpzFile``)."""

    @property
    def files(self) -> list[str]:
        return list(self)


def load_npz(path: Path, required: tuple[str, ...] = ()) -> NpzArrays:
    """Every array of a saved ``.npz`` file, read now: a truncated or damaged file, or one lacking a ``required``
    array, is one :class:`ReportError` naming it, never a traceback halfway through a figure."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = NpzArrays((key, data[key]) for key in data.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ReportError(f"{path} is not a readable .npz file ({type(exc).__name__}: {first}); re-run the step "
                          "that wrote it") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise ReportError(f"{path} lacks the array(s) {missing}; re-run the step that wrote it")
    return arrays


def check_predictions(path: Path, table: pd.DataFrame | None, notes: list[str]) -> None:
    """A results table whose prediction column holds no finite value is one :class:`ReportError` (a figure of
    nothing would pass for a result); some rows without a prediction become a note naming how many."""
    if table is None or table.empty:
        return
    for column in [c for c in table.columns if c.endswith("_pred") or c == "lvh_proba"]:
        finite = np.isfinite(pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float))
        if not finite.any():
            raise ReportError(f"{path}: column {column} holds no finite prediction in any of its {len(table)} "
                              "rows; re-run the step that wrote it")
        if not finite.all():
            notes.append(f"{path.name}: {int((~finite).sum())} of {len(table)} rows have no finite {column}; "
                         "check the step that wrote it")


def _resolve(path_text: str | None, base: Path) -> Path | None:
    """A path saved in a run (absolute at write time) or relative to the run folder."""
    if not path_text:
        return None
    path = Path(path_text)
    for candidate in (path, base / path, base.parent / path):
        if candidate.exists():
            return candidate
    return None


def load_run(path: str | Path) -> RunData:
    """Load one folder; raises :class:`ReportError` when it holds neither ``metrics.json`` nor ``explain.json``."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path} is not a folder; pass a run folder (with metrics.json) or an explain folder")
    if (path / "explain.json").exists() and not (path / "metrics.json").exists():
        data = RunData(path=path, label=f"explanations ({path.name})", kind="explain")
        data.explain = _mapping(path / "explain.json")
        attributions = path / data.explain.get("attributions", "attributions.npz")
        if attributions.exists():  # a damaged file is refused now, before any figure is drawn
            load_npz(attributions, EXPLAIN_ARRAYS)
        return data
    if not (path / "metrics.json").exists():
        raise ReportError(f"{path} holds no metrics.json: pass the folder of a training, fine-tuning or "
                          "`aiecg evaluate` run (or of `aiecg explain`)")
    metrics = _mapping(path / "metrics.json")
    kind = "finetune" if "finetuned_from" in metrics else ("train" if "training" in metrics else "evaluate")
    label = str(metrics.get("run") or path.name)
    if kind == "finetune":
        label = f"{path.name} (fine-tuned)"
    data = RunData(path=path, label=label, kind=kind, metrics=metrics)
    data.results = _csv(path / "results.csv")
    data.results_val = _csv(path / "results_val.csv")
    for name, table in (("results.csv", data.results), ("results_val.csv", data.results_val)):
        check_predictions(path / name, table, data.notes)
    data.comparison = _csv(path / "comparison.csv")
    data.comparison_regression = _csv(path / "comparison_regression.csv")
    data.comparison_scores = _csv(path / "comparison_scores.csv")
    data.decision_curve = _csv(path / "decision_curve.csv")
    data.reclassification = _csv(path / "reclassification.csv", ("criterion", "events_up", "events_down",
                                                                 "non_events_up", "non_events_down", "nri_events",
                                                                 "nri_non_events"))
    # the curves the evaluation saves (aiecg.evaluate.curves; older runs: workflows/report.py computes them)
    data.roc_curves = _csv(path / "roc_curves.csv", ("curve", "kind", "fpr", "tpr"))
    data.roc_band = _csv(path / "roc_band.csv", ("fpr", "tpr_low", "tpr_high"))
    data.pr_curves = _csv(path / "pr_curves.csv", ("curve", "kind", "weighting", "prevalence", "recall",
                                                   "precision"))
    data.pr_band = _csv(path / "pr_band.csv", ("weighting", "prevalence", "recall", "precision_low",
                                               "precision_high"))
    data.probability_calibration = _csv(path / "probability_calibration.csv", ("probability", "mean_predicted",
                                                                           "mean_observed", "n"))
    data.regression_calibration = _csv(path / "regression_calibration.csv", ("prediction", "mean_predicted",
                                                                              "mean_observed", "n"))
    data.lr_curve = _csv(path / "lr_curve.csv", ("is_m", "value", "lvh_proba"))
    data.lr_cutoffs = _csv(path / "lr_cutoffs.csv", ("is_m", "learned_cutoff", "guideline_cutoff"))
    data.calibration_curve = _csv(path / "calibration_curve.csv", ("group", "mean_predicted", "observed", "low",
                                                                     "high", "slope", "intercept"))
    if (path / "proportional_bias.json").exists():
        data.proportional_bias = _mapping(path / "proportional_bias.json")
    data.exclusions = _csv(path / "exclusions.csv")
    if (path / "epochs.csv").exists():
        data.epochs.append(("training", _csv(path / "epochs.csv", EPOCH_COLUMNS)))
    for stage in sorted(path.glob("stage*/epochs.csv"), key=lambda p: int(p.parent.name[5:] or 0)):
        data.epochs.append((f"stage {stage.parent.name[5:]}", _csv(stage, EPOCH_COLUMNS)))
    if (path / "splits.json").exists():
        data.splits = _mapping(path / "splits.json")
        if not all(isinstance(ids, list) for ids in data.splits.values()):
            raise ReportError(f"{path / 'splits.json'} must map each split to a list of ids; re-run the step that "
                              "wrote it")
    if (path / "config.yaml").exists():
        data.config = _mapping(path / "config.yaml")
    bundle_path = path / "model.aiecg" if (path / "model.aiecg").exists() else _resolve(metrics.get("bundle"), path)
    if bundle_path is not None:
        data.bundle_path = bundle_path  # read by workflows/report.py into data.bundle
    else:
        data.notes.append("model bundle not found (model card and LR cut-offs left out)")
    cohort_path = _resolve(metrics.get("cohort") or (data.config or {}).get("cohort"), path)
    if cohort_path is None:
        data.notes.append(f"cohort {metrics.get('cohort')} not found: participant characteristics, criteria curves "
                          "and median beats are left out")
    else:
        try:
            spec = data.spec
            data.cohort = load_cohort(cohort_path, tuple(spec.outputs) if spec else ())
        except AiecgError as exc:
            data.notes.append(f"cohort not readable: {exc}")
        data.store_path = _resolve((data.config or {}).get("store"), path) or cohort_path.parent / "store"
    if data.results is None:
        data.notes.append("no results.csv: the per-participant figures are left out")
    return data


def run_ids(run: RunData) -> np.ndarray:
    """Every participant the run used (its splits), else those of its results table."""
    if run.splits:
        return np.asarray([i for name in ("train", "val", "test") for i in run.splits.get(name, [])], dtype=str)
    if run.results is not None:
        return run.results["eid"].astype(str).to_numpy()
    return np.asarray([], dtype=str)


def cohort_rows(run: RunData, ids: np.ndarray | None = None) -> pd.DataFrame | None:
    """The cohort rows of ``ids`` (default: every participant the run used)."""
    if run.cohort is None:
        return None
    frame = run.cohort.frame.set_index(ID)
    ids = run_ids(run) if ids is None else ids
    return frame.loc[frame.index.intersection(pd.Index(ids))].reset_index()
