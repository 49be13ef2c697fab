"""Where a trained bundle meets a cohort: open the cohort and its store, check the input contract
(:mod:`aiecg.contract`), keep the usable participants, and re-create the training run's split.

Evaluation, fine-tuning and explanation all start here, so the checks are written once. A cohort that does not
map the bundle's target can still be used when it has LVH labels and the model outputs an LVH score (an
indexed-LV-mass model's LVH call and probability, issue 25): then only those outputs are scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aiecg.bundle import Bundle, load_bundle
from aiecg.config import default_store
from aiecg.contract import check_clinical_columns, check_store
from aiecg.data.cohort import ID, Cohort, load_cohort, load_mapping
from aiecg.data.dataset import Arrays, build_arrays
from aiecg.data.selection import ids_digest, make_splits, usable_cohort
from aiecg.data.splits import Splits
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.errors import BundleError, CohortError


@dataclass
class BundledCohort:
    """A bundle opened on a cohort whose store meets its input contract.

    Attributes:
        cohort: the usable participants (an ECG in the store that passed QC, not paced unless asked).
        scored: the bundle's target outputs the cohort maps (all of ``bundle.target.outputs``, or none when only
            the LVH label is there).
    """

    bundle: Bundle
    bundle_path: str | Path
    cohort_path: str | Path
    cohort: Cohort
    store: Store
    scored: tuple[str, ...]

    @property
    def spec(self) -> TargetSpec:
        return self.bundle.target

    @property
    def frame(self) -> pd.DataFrame:
        return self.cohort.frame

    def training_splits(self) -> Splits:
        """The training run's splits, re-created from its seed; refused when the test split is not the one the
        model was tested on (a changed cohort could otherwise leak training participants into the test set)."""
        training = self.bundle.training
        splits = make_splits(self.frame, self.spec, int(training["split_seed"]), tuple(training["split_fractions"]))
        if ids_digest(splits.test) != training.get("test_ids_sha256"):
            raise BundleError(f"{self.cohort_path}: re-creating the test split of {self.bundle_path} gave other "
                              "participants than at training time (the cohort changed); use --split all for another "
                              "cohort")
        return splits

    def check_ids(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` as strings, refused when any is not a usable participant here."""
        ids = np.asarray(ids, dtype=str)
        missing = np.setdiff1d(ids, self.frame[ID].to_numpy(dtype=str))
        if missing.size:
            raise CohortError(f"{self.cohort_path}: {missing.size} of the {ids.size} requested participants are not "
                              f"usable there (no usable ECG in {self.store.root} or not in the cohort), e.g. "
                              f"{', '.join(missing[:5])}; see the store's index for why, or leave them out")
        return ids

    def arrays(self, ids: np.ndarray) -> Arrays:
        """The model's inputs (and targets, NaN where the cohort does not map them) for these participants."""
        return build_arrays(self.store, self.frame, ids, self.spec, self.bundle.leads, self.bundle.encoder,
                            self.bundle.input_kind)


def scores_lvh(spec: TargetSpec) -> bool:
    """Does a model of this target output an LVH score (a probability, or a mass with LVH cut-offs)?"""
    return spec.kind is TaskKind.BINARY or (spec.is_regression and spec.lvh_thresholds is not None)


def scorable_targets(spec: TargetSpec, cohort_path: str | Path) -> tuple[str, ...]:
    """The target outputs a cohort can score: all of the model's when it maps them, else none when it has an
    LVH label (mapped, or derived from a mapped mass) and the model outputs an LVH score.

    Raises:
        CohortError: the cohort maps neither the model's target nor an LVH label it could score.
    """
    mapped = set(load_mapping(cohort_path).targets)

    def maps(name: str) -> bool:  # an LVH label may be derived from a mapped mass (load_cohort)
        return name in mapped or (name == "LVH" and bool({"INDEXED_MASS", "MASS"} & mapped))

    if all(maps(name) for name in spec.outputs):
        return tuple(spec.outputs)
    if scores_lvh(spec) and maps("LVH"):
        return ()
    raise CohortError(f"{cohort_path}: target {', '.join(o for o in spec.outputs if not maps(o))} is not mapped "
                      "under 'targets'" + (", nor LVH (the model's LVH outputs could be scored against it)"
                                           if scores_lvh(spec) else "") + "; map it in the cohort YAML")


def open_bundled(bundle: Bundle | str | Path, cohort_path: str | Path, store_path: str | Path | None = None,
                 bundle_path: str | Path | None = None, require_targets: bool = True,
                 include_paced: bool = False) -> BundledCohort:
    """Open ``cohort_path`` and its store (default: the cohort's) for a bundle (or the path of one) and check
    the input contract and the clinical columns before anything runs.

    Args:
        require_targets: keep only participants with the outputs the cohort can score (see
            :func:`scorable_targets`); False keeps everyone (explanations need no truth).
    """
    if not isinstance(bundle, Bundle):
        bundle_path = bundle_path or bundle
        bundle = load_bundle(bundle)
    spec = bundle.target
    scored = scorable_targets(spec, cohort_path) if require_targets else ()
    required = (scored or ("LVH",)) if require_targets else ()
    cohort = load_cohort(cohort_path, tuple(required))
    store = Store.open(store_path or default_store(cohort_path))
    check_store(bundle.input_spec, store.manifest, store.root, cohort_path)
    cohort = usable_cohort(cohort, store, include_paced=include_paced)
    check_clinical_columns(bundle.encoder, cohort, cohort_path)
    return BundledCohort(bundle, bundle_path or "", cohort_path, cohort, store, tuple(scored))
