"""Clinical-variable encoder: impute, encode, scale; fitted on the training split only.

Following the reference pipeline: binary variables as 0/1 (mode-imputed), categorical variables one-hot
(e.g. smoking never/previous/current; mode-imputed), continuous variables median-imputed then min-max scaled
with the training minimum and maximum. All parameters are plain numbers, saved in the run and the bundle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiecg.conventions import decode_sex
from aiecg.data.cohort import ClinicalSpec, level_key
from aiecg.errors import CohortError


@dataclass
class ClinicalEncoder:
    """Turns clinical columns into a float32 matrix with a fixed column order.

    Attributes:
        spec: which columns are binary, categorical, continuous.
        fill: imputation value per column (mode for binary/categorical, median for continuous).
        binary_positive: for each binary column, the value encoded as 1.
        minimum, maximum: min-max scaling per continuous column.
        n_fit: rows the encoder was fitted on.
    """

    spec: ClinicalSpec
    fill: dict[str, Any] = field(default_factory=dict)
    binary_positive: dict[str, Any] = field(default_factory=dict)
    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)
    n_fit: int = 0

    @property
    def feature_names(self) -> list[str]:
        names = list(self.spec.binary)
        for column, levels in self.spec.categorical.items():
            names += [f"{column}={level}" for level in levels]
        return names + list(self.spec.continuous)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.spec.columns if c not in frame.columns]
        if missing:
            raise CohortError(
                f"clinical columns {missing} are missing; the encoder expects {list(self.spec.columns)}. "
                "Map them in the cohort YAML under 'clinical' or train with --excl_meta."
            )

    def fit(self, frame: pd.DataFrame) -> ClinicalEncoder:
        """Learn imputation and scaling from ``frame`` (the training split only)."""
        self._check_columns(frame)
        if len(frame) == 0:
            raise CohortError("cannot fit the clinical encoder on zero training rows")
        self.n_fit = len(frame)
        for column in self.spec.binary:
            values = frame[column].dropna()
            levels = sorted(values.unique().tolist(), key=str)
            if len(levels) > 2:
                raise CohortError(f"binary clinical column '{column}' has {len(levels)} levels {levels[:5]}; "
                                  "list it under 'categorical' instead")
            self.binary_positive[column] = _to_plain(1 if not levels or 1 in levels else levels[-1])
            self.fill[column] = _to_plain(values.mode().iloc[0]) if len(values) else 0
        for column in self.spec.categorical:
            values = frame[column].dropna()
            levels = self.spec.categorical[column]
            mode = level_key(values.mode().iloc[0]) if len(values) else level_key(levels[0])
            self.fill[column] = next((_to_plain(lv) for lv in levels if level_key(lv) == mode), _to_plain(levels[0]))
        for column in self.spec.continuous:
            values = pd.to_numeric(frame[column], errors="coerce").dropna()
            if values.empty:
                raise CohortError(f"continuous clinical column '{column}' has no values in the training split")
            self.fill[column] = float(values.median())
            self.minimum[column] = float(values.min())
            self.maximum[column] = float(values.max())
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode ``frame`` with the fitted parameters; returns float32 [rows, n_features]."""
        if not self.n_fit:
            raise RuntimeError("ClinicalEncoder.transform called before fit")
        self._check_columns(frame)
        blocks = []
        for column in self.spec.binary:
            values = frame[column].where(frame[column].notna(), self.fill[column])
            positive = level_key(self.binary_positive[column])
            blocks.append((values.map(level_key) == positive).to_numpy(float)[:, None])
        for column, levels in self.spec.categorical.items():
            values = frame[column].where(frame[column].notna(), self.fill[column]).map(level_key)
            known = {level_key(level) for level in levels}
            unknown = sorted(set(values) - known)
            if unknown:
                raise CohortError(f"clinical column '{column}' has levels {unknown[:5]} not in {list(levels)}; "
                                  "add them under 'categorical' in the cohort YAML")
            blocks.append(np.stack([(values == level_key(level)).to_numpy(float) for level in levels], axis=1))
        for column in self.spec.continuous:
            values = pd.to_numeric(frame[column], errors="coerce").fillna(self.fill[column]).to_numpy(float)
            span = self.maximum[column] - self.minimum[column]
            blocks.append(((values - self.minimum[column]) / (span if span > 0 else 1.0))[:, None])
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(), "fill": self.fill, "binary_positive": self.binary_positive,
            "minimum": self.minimum, "maximum": self.maximum, "n_fit": self.n_fit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClinicalEncoder:
        spec = data["spec"]
        return cls(
            spec=ClinicalSpec(
                binary=tuple(spec["binary"]),
                categorical={k: tuple(v) for k, v in spec["categorical"].items()},
                continuous=tuple(spec["continuous"]),
                ranges={k: tuple(v) for k, v in spec.get("ranges", {}).items()},
            ),
            fill=dict(data["fill"]), binary_positive=dict(data["binary_positive"]),
            minimum={k: float(v) for k, v in data["minimum"].items()},
            maximum={k: float(v) for k, v in data["maximum"].items()}, n_fit=int(data["n_fit"]),
        )


def _to_plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so parameters serialise as plain JSON numbers."""
    return value.item() if hasattr(value, "item") else value


def encoder_sex_code(encoder: ClinicalEncoder | None, column: str | None, is_m: float, value: Any,
                     male_code: Any = 1, female_code: Any = 0) -> Any:
    """The value of the sex column ``column`` that ``encoder`` reads as sex ``is_m`` (1 male, 0 female).

    ``value`` itself where the encoder knows it (one of its two codes: the table's coding is trusted); otherwise
    (``male``/``female`` text for a model trained on 1/0, or a missing value the ECG header fills) the encoder's
    positive code where that means this sex under the source's coding (``male_code``/``female_code``: 1/0, or
    the cohort YAML's codes; the words male/female always), else its other code; ``value`` unchanged where the
    encoder's codes say nothing about sex. THE one place ``aiecg predict`` and ``aiecg explain --ecg`` turn a
    participant's sex into the network's sex input.
    """
    if encoder is None or column not in encoder.spec.binary:
        return value
    positive, fill = encoder.binary_positive[column], encoder.fill[column]
    if pd.notna(value) and level_key(value) in {level_key(positive), level_key(fill)}:
        return value
    positive_sex = decode_sex(positive, male_code, female_code)
    if math.isnan(positive_sex):
        return value
    if positive_sex == is_m:
        return positive
    if level_key(fill) != level_key(positive):
        return fill
    code = male_code if is_m == 1 else female_code
    return code if level_key(code) != level_key(positive) else value


def header_sex_code(encoder: ClinicalEncoder | None, column: str | None, header_sex: float, table_sex: float,
                    value: Any, male_code: Any = 1, female_code: Any = 0) -> Any:
    """The sex column's value where the clinical table leaves it empty and the ECG header has the sex, so that
    the network gets the header's sex (as the sex-specific outputs do), not the encoder's imputed mode; NaN where
    nothing is to be filled (no header sex, a table sex or value, or an encoder without this sex column)."""
    if (encoder is None or column not in encoder.spec.binary or not np.isfinite(header_sex)
            or np.isfinite(table_sex) or pd.notna(value)):
        return math.nan
    return encoder_sex_code(encoder, column, header_sex, math.nan, male_code, female_code)
