"""aiecg: AI-ECG models of left-ventricular mass and hypertrophy from the 12-lead ECG.

The Python API (imported on first use, so ``import aiecg`` stays light and loading a config never imports torch)::

    import aiecg

    ecg = aiecg.read_ecg("ecg.xml")                       # any supported format -> ECG (millivolts)
    cohort = aiecg.load_cohort("cohort.yaml", ("INDEXED_MASS",))
    model = aiecg.create_model("fcn", n_leads=8, n_samples=400, n_meta=16, n_outputs=1)
    bundle = aiecg.load_bundle("runs/fcn_ilvm/model.aiecg")
    table = aiecg.predict_files(bundle, ["folder/of/ecgs"])  # one row per file, errors as rows
    y = aiecg.predict_arrays(bundle.build_model(), ecg_array, meta_array, bundle.target, bundle.scaling)
"""

import sys
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiecg.threads import prepare_openmp

if "torch" not in sys.modules:  # before torch loads OpenMP: idle threads spin briefly, then sleep (shared cores)
    prepare_openmp()


def _source_version() -> str:
    """The version in pyproject.toml, for a source tree that was not installed."""
    import re
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M) if pyproject.exists() else None
    return f"{match.group(1)}+source" if match else "unknown (not installed)"


try:
    __version__ = version("aiecg")
except PackageNotFoundError:
    __version__ = _source_version()

_API = {
    "read_ecg": "aiecg.io", "ECG": "aiecg.ecg", "load_cohort": "aiecg.data.cohort", "create_model": "aiecg.models",
    "list_models": "aiecg.models", "load_bundle": "aiecg.bundle", "save_bundle": "aiecg.bundle",
    "target_spec": "aiecg.data.targets", "list_targets": "aiecg.data.targets",
    "RunConfig": "aiecg.config", "predict_files": "aiecg.workflows.predict",
    "train_run": "aiecg.workflows.train", "evaluate_bundle": "aiecg.workflows.evaluate",
}

__all__ = ["__version__", "predict_arrays", *_API]


def __getattr__(name: str) -> Any:
    if name == "predict_arrays":  # the module aiecg.predict holds THE prediction loop, a function of that name
        from aiecg.predict import predict

        return predict
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aiecg' has no attribute {name!r}")
