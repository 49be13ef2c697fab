"""Post-hoc models fitted on the validation split and saved in the bundle (plain numbers, no pickle).

- LVH from a predicted (indexed) mass by the sex-specific cut-offs (``lvh_pred_cutoff``).
- The reference's "LR" pipeline: logistic regression on (sex, predicted value) -> LVH probability
  (``lvh_proba_lr``), where the value is the predicted mass, or the logit of an LVH model's probability.
- Prior-shift adjustment (Saerens et al. 2002) of a probability from the prevalence it was fitted at to the
  target population's (``*_prioradj``): models trained on re-sampled or beat-expanded data, or an enriched
  cohort, see another prevalence than the population they are applied to.
- The Youden-optimal threshold of the primary LVH probability, chosen on validation data (Youden 1950).
- Linear recalibration of a predicted mass on (sex, prediction) (``--recalib``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.evaluate.calibration import (
    LinearRecalibration,
    SexLogisticModel,
    fit_linear_recalibration,
    fit_sex_logistic,
    logit,
    prior_shift,
    youden_threshold,
)


@dataclass(frozen=True)
class PostHoc:
    """The fitted post-hoc models of one trained model.

    Attributes:
        lr: LVH probability from (sex, value); None when the validation split lacks a class.
        model_prevalence: the LVH share the model's own probabilities reflect (its effective training share).
        validation_prevalence: the LVH share of the validation split (what ``lr`` reflects).
        target_prevalence: the prevalence probabilities are adjusted to (default: the training split's).
        threshold: Youden-optimal cut-off of the primary probability (``lvh_proba`` or ``lvh_proba_lr``).
        recalibration: linear recalibration of the first regression output, if fitted.
    """

    lr: SexLogisticModel | None
    model_prevalence: float | None
    validation_prevalence: float | None
    target_prevalence: float | None
    threshold: float | None
    recalibration: LinearRecalibration | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr.to_dict() if self.lr else None, "model_prevalence": self.model_prevalence,
            "validation_prevalence": self.validation_prevalence, "target_prevalence": self.target_prevalence,
            "threshold": self.threshold,
            "recalibration": self.recalibration.to_dict() if self.recalibration else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PostHoc:
        data = data or {}
        return cls(
            lr=SexLogisticModel.from_dict(data["lr"]) if data.get("lr") else None,
            model_prevalence=data.get("model_prevalence"), validation_prevalence=data.get("validation_prevalence"),
            target_prevalence=data.get("target_prevalence"), threshold=data.get("threshold"),
            recalibration=LinearRecalibration.from_dict(data["recalibration"]) if data.get("recalibration") else None,
        )


def lr_input(spec: TargetSpec, y_pred: np.ndarray) -> np.ndarray | None:
    """The value the LR pipeline reads: the predicted mass, or the logit of the LVH probability."""
    if spec.kind is TaskKind.BINARY:
        return logit(y_pred[:, 0])
    if spec.is_regression and spec.lvh_thresholds is not None:
        return y_pred[:, 0]
    return None


def fit_posthoc(
    spec: TargetSpec, y_pred: np.ndarray, is_male: np.ndarray, lvh: np.ndarray | None, y_true: np.ndarray | None,
    model_prevalence: float | None, target_prevalence: float | None, recalibrate: bool = False,
) -> PostHoc:
    """Fit the post-hoc models on VALIDATION predictions (never on the test split).

    Args:
        spec: the model's target.
        y_pred: validation predictions in target units [n, outputs].
        is_male: 1 male, 0 female.
        lvh: validation LVH labels (None if the cohort has none).
        y_true: validation true values (for recalibration).
        model_prevalence: the LVH share of the samples the model was trained on (LVH models).
        target_prevalence: the population prevalence to adjust probabilities to.
        recalibrate: fit the linear recalibration of the first regression output.
    """
    value = lr_input(spec, y_pred)
    lr = threshold = val_prevalence = None
    usable = lvh is not None and value is not None and len(np.unique(lvh[np.isfinite(lvh)])) == 2
    if usable:
        val_prevalence = float(np.nanmean(lvh))
        try:
            lr = fit_sex_logistic(is_male, value, lvh)
        except ValueError:  # separable validation data (small cohorts): a ridge penalty keeps the fit finite
            lr = fit_sex_logistic(is_male, value, lvh, l2=1.0)
        primary = y_pred[:, 0] if spec.kind is TaskKind.BINARY else lr.predict_proba(is_male, value)
        threshold = youden_threshold(lvh, primary)
    recalibration = None
    if recalibrate:
        if not spec.is_regression or y_true is None:
            raise ValueError("--recalib applies to regression targets only")
        recalibration = fit_linear_recalibration(is_male, y_pred[:, 0], y_true[:, 0])
    return PostHoc(lr, model_prevalence, val_prevalence, target_prevalence, threshold, recalibration)


def posthoc_columns(spec: TargetSpec, posthoc: PostHoc, y_pred: np.ndarray, is_male: np.ndarray) -> pd.DataFrame:
    """The reference's post-hoc result columns for one split (empty where a model does not apply)."""
    columns: dict[str, np.ndarray] = {}
    target = posthoc.target_prevalence
    if spec.kind is TaskKind.BINARY and posthoc.model_prevalence and target:
        columns["lvh_proba_prioradj"] = prior_shift(y_pred[:, 0], posthoc.model_prevalence, target)
    value = lr_input(spec, y_pred)
    if posthoc.lr is not None and value is not None:
        proba = posthoc.lr.predict_proba(is_male, value)
        columns["lvh_proba_lr"] = proba
        if posthoc.validation_prevalence and target:
            columns["lvh_proba_prioradj_lr"] = prior_shift(proba, posthoc.validation_prevalence, target)
    if posthoc.recalibration is not None:
        stem = spec.stem
        columns[f"{stem}_pred_recal"] = posthoc.recalibration.apply(is_male, y_pred[:, 0])
    return pd.DataFrame(columns)
