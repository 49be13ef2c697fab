"""Classic machine-learning baselines, the reference's supervised benchmark (Naderi et al. 2023):

- an SVM with an RBF kernel on ECG measurements + clinical variables for LVH, the majority class under-sampled
  in training; an SVR for a continuous target; hyper-parameters searched on the validation split;
- the same on the ECG measurements alone;
- a clinical-only logistic (LVH) or linear (mass) regression.

Every baseline is fitted on the training split, tuned on the validation split and scored on the test split.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from aiecg.evaluate.metrics import compute_auroc

MEASUREMENT_PATTERN = re.compile(r"^([PQRSJT]|qrs_area)_|^(qrs_duration_ms|qt_ms|qtc_bazett_ms|qrs_axis_deg)$")
"""Store-index columns used as ECG features: per-lead P/Q/R/S/J/T amplitudes and QRS areas, QRS duration, QT,
QTc and the frontal axis (heart rate enters through the clinical variables)."""

SVM_GRID = {"C": (0.1, 1.0, 10.0), "gamma": ("scale", 0.003, 0.03)}
SVR_GRID = {"C": (1.0, 10.0, 100.0), "gamma": ("scale", 0.003, 0.03), "epsilon": (0.5, 2.0)}


def measurement_columns(columns: Sequence[str]) -> list[str]:
    """The ECG-measurement feature columns among ``columns``."""
    return [c for c in columns if MEASUREMENT_PATTERN.search(c)]


@dataclass(frozen=True)
class BaselineFeatures:
    """Feature matrices per split (rows aligned with the split's participant order)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    names: list[str]


def undersample(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices with the majority class randomly cut to the minority's size."""
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    size = min(map(len, classes))
    return np.sort(np.concatenate([rng.choice(members, size, replace=False) for members in classes]))


def _pipeline(model):
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), model)


def fit_svm_classifier(
    x: BaselineFeatures, y_train: np.ndarray, y_val: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """RBF-kernel SVM for a binary label with the majority under-sampled; (C, gamma) chosen by validation AUROC.

    Returns the validation and test decision scores and the chosen hyper-parameters.
    """
    rows = undersample(y_train.astype(int), np.random.default_rng(seed))
    best, best_auc = None, -np.inf
    for c, gamma in itertools.product(SVM_GRID["C"], SVM_GRID["gamma"]):
        model = _pipeline(SVC(C=c, gamma=gamma, kernel="rbf")).fit(x.train[rows], y_train[rows].astype(int))
        auc = compute_auroc(y_val, model.decision_function(x.val))
        if auc > best_auc:
            best, best_auc = (model, {"C": c, "gamma": gamma, "val_auroc": auc}), auc
    model, params = best
    return model.decision_function(x.val), model.decision_function(x.test), params


def fit_svr(x: BaselineFeatures, y_train: np.ndarray, y_val: np.ndarray) -> tuple[np.ndarray, dict]:
    """RBF-kernel SVR; (C, gamma, epsilon) chosen by validation mean absolute error. Targets standardised."""
    mean, sd = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
    best, best_mae = None, np.inf
    for c, gamma, epsilon in itertools.product(SVR_GRID["C"], SVR_GRID["gamma"], SVR_GRID["epsilon"]):
        model = _pipeline(SVR(C=c, gamma=gamma, epsilon=epsilon / sd)).fit(x.train, (y_train - mean) / sd)
        mae = float(np.mean(np.abs(model.predict(x.val) * sd + mean - y_val)))
        if mae < best_mae:
            best, best_mae = (model, {"C": c, "gamma": gamma, "epsilon": epsilon, "val_mae": mae}), mae
    model, params = best
    return model.predict(x.test) * sd + mean, params


def fit_clinical_logistic(x: BaselineFeatures, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on the clinical variables; validation and test probabilities."""
    model = _pipeline(LogisticRegression(max_iter=2000)).fit(x.train, y_train.astype(int))
    return model.predict_proba(x.val)[:, 1], model.predict_proba(x.test)[:, 1]


def fit_clinical_linear(x: BaselineFeatures, y_train: np.ndarray) -> np.ndarray:
    """Linear regression on the clinical variables; test predictions."""
    return _pipeline(LinearRegression()).fit(x.train, y_train).predict(x.test)


def feature_sets(
    measurements: dict[str, pd.DataFrame], clinical: dict[str, np.ndarray]
) -> dict[str, BaselineFeatures]:
    """The ECG-only, clinical-only and combined feature sets from per-split measurement frames and clinical
    matrices (``{"train": ..., "val": ..., "test": ...}``)."""
    names = measurement_columns(measurements["train"].columns)
    ecg = {k: measurements[k][names].to_numpy(dtype=float) for k in ("train", "val", "test")}
    width = clinical["train"].shape[1]
    clinical_names = [f"clinical_{i}" for i in range(width)]
    return {
        "ecg": BaselineFeatures(ecg["train"], ecg["val"], ecg["test"], names),
        "clinical": BaselineFeatures(clinical["train"], clinical["val"], clinical["test"], clinical_names),
        "ecg+clinical": BaselineFeatures(*(np.hstack([ecg[k], clinical[k]]) for k in ("train", "val", "test")),
                                         names + clinical_names),
    }
