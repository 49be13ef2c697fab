"""Label efficiency of self-supervised pre-training (issue 23), on the synthetic cohort, paired and converged.

One synthetic cohort is generated and prepared once. A fixed test set (``--test``) is drawn first; the encoder is
pre-trained (``aiecg pretrain``'s workflow, masked reconstruction) on every other usable ECG, labelled or not (the
test ECGs are excluded). For each labelled-set size and seed, the same training participants (and a validation
set a quarter their size, at least 50) are used by every arm:

- ``scratch``: the FCN from random initialisation;
- ``pretrained``: the FCN started from the encoder, all weights fine-tuned;
- ``probe``: the encoder frozen, only the head trained (a linear probe with the FCN's two-layer head);
- ``ridge``: ridge regression (RidgeCV) on the store's measurements of the median beat.

Deep models are ECG-only (no clinical variables, so the comparison is about the ECG representation), predict
indexed LV mass, and train to early stopping (``--max-epochs``, patience ``--patience``). Every arm is scored on
the same test participants: R² of indexed LV mass and the AUROC of the predicted value for LVH, with paired
bootstrap intervals (the project's one bootstrap) of the differences to scratch at the same size, and of
pre-trained at size n against scratch at 4n. Writes ``benchmarks/results/label_efficiency.json``::

    .venv/bin/python benchmarks/label_efficiency.py                      # 6,000 participants, 250..2,000 labels
    .venv/bin/python benchmarks/label_efficiency.py --quick              # a smaller run that fits a busy machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeCV

from aiecg.bundle import load_bundle
from aiecg.config import FitConfig, PretrainConfig
from aiecg.data.cohort import ID, IS_MALE, load_cohort
from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling
from aiecg.data.prepare import PrepareConfig, prepare_store
from aiecg.data.store import Store
from aiecg.data.targets import target_spec
from aiecg.ecg import MODEL_LEADS
from aiecg.evaluate.bootstrap import bootstrap_ci
from aiecg.evaluate.metrics import compute_auroc
from aiecg.evaluate.stats import r_squared
from aiecg.models import create_model
from aiecg.predict import predict
from aiecg.synth import SynthConfig, generate_cohort
from aiecg.train.loop import fit
from aiecg.train.losses import LogCoshLoss
from aiecg.train.pretrain import start_from_encoder
from aiecg.workflows.pretrain import pretrain_run

ROOT = Path(__file__).resolve().parents[1]
SPEC = target_spec("INDEXED_MASS")


def measurement_columns(index: pd.DataFrame) -> list[str]:
    """The store's per-record measurements of the median beat (amplitudes, intervals, axes)."""
    columns = list(index.columns)
    return [c for c in columns[columns.index("R_I"): columns.index("beat_count")]
            if pd.api.types.is_numeric_dtype(index[c])]


def arrays_for(store: Store, frame: pd.DataFrame, ids: list[str]) -> Arrays:
    rows = frame.set_index(ID).loc[ids]
    return Arrays(np.array(ids), rows[IS_MALE].to_numpy(np.int64), store.medians(ids, MODEL_LEADS),
                  np.zeros((len(ids), 0), np.float32), rows[list(SPEC.outputs)].to_numpy(np.float32))


def train_arm(arm: str, train: Arrays, val: Arrays, test: Arrays, encoder: dict | None, seed: int,
              fit_config: FitConfig) -> tuple[np.ndarray, dict]:
    scaling = TargetScaling.fit(train.target)
    torch.manual_seed(seed)
    model = create_model("fcn", len(MODEL_LEADS), train.ecg.shape[2], 0, 1)
    config = dataclasses.replace(fit_config, seed=seed)
    if arm != "scratch":
        start_from_encoder(model, encoder, freeze=arm == "probe")
        if arm == "probe":
            config = dataclasses.replace(config, freeze_batchnorm=True)
    result = fit(model, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(), config, None,
                 progress=False)
    predicted = predict(model, test.ecg, test.meta, SPEC, scaling)[:, 0]
    return predicted, {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                       "seconds": round(result.seconds, 1)}


def ridge_arm(index: pd.DataFrame, train_ids: list[str], test_ids: list[str], y: np.ndarray) -> np.ndarray:
    columns = measurement_columns(index)
    table = index.set_index("id")[columns]
    x_train, x_test = table.loc[train_ids].to_numpy(float), table.loc[test_ids].to_numpy(float)
    centre = np.nanmedian(x_train, axis=0)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    x_train, x_test = (np.where(np.isnan(x), centre, x) for x in (x_train, x_test))
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    model = RidgeCV(alphas=np.logspace(-2, 4, 25)).fit((x_train - mean) / sd, y)
    return model.predict((x_test - mean) / sd)


def score(y: np.ndarray, lvh: np.ndarray, predicted: np.ndarray, seed: int) -> dict:
    r2 = bootstrap_ci(r_squared, y, predicted, seed=seed, n_resamples=1000)
    auroc = bootstrap_ci(compute_auroc, lvh, predicted, seed=seed, n_resamples=1000, stratify=lvh)
    return {"r2": [r2.estimate, r2.low, r2.high], "auroc": [auroc.estimate, auroc.low, auroc.high]}


def paired(y: np.ndarray, lvh: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int) -> dict:
    """R² and AUROC of ``a`` minus those of ``b`` on the same test participants, with paired intervals."""
    def r2_difference(t, p, q, axis=-1):
        return r_squared(t, p, axis=axis) - r_squared(t, q, axis=axis)

    def auroc_difference(labels, p, q):
        return compute_auroc(labels, p) - compute_auroc(labels, q)

    r2 = bootstrap_ci(r2_difference, y, a, b, seed=seed, n_resamples=1000)
    auroc = bootstrap_ci(auroc_difference, lvh, a, b, seed=seed, n_resamples=1000, stratify=lvh)
    return {"r2_difference": [r2.estimate, r2.low, r2.high], "auroc_difference": [auroc.estimate, auroc.low,
                                                                                   auroc.high]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6000, help="participants of the synthetic cohort")
    parser.add_argument("--test", type=int, default=1000, help="fixed test participants")
    parser.add_argument("--sizes", default="250,500,1000,2000", help="labelled training set sizes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--patience", type=int, default=15)
    parser.add_argument("--pretrain-epochs", type=int, default=100)
    parser.add_argument("--quick", action="store_true",
                        help="2,000 participants, 400 test, sizes 100,200,400,800, 1 seed, shorter training")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "label_efficiency.json")
    args = parser.parse_args()
    if args.quick:
        args.n, args.test, args.sizes, args.seeds = 2000, 400, "100,200,400,800", 1
        args.max_epochs, args.patience, args.pretrain_epochs = 80, 10, 40
    sizes = [int(s) for s in args.sizes.split(",")]
    started, load = time.perf_counter(), os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="aiecg-label-efficiency-"))
    try:
        data = work / "data"
        generate_cohort(data, SynthConfig(n=args.n, seed=7, lvh_prevalence=0.2), progress=False)
        prepare_store(data / "cohort.yaml", data / "store", PrepareConfig(store_beats=False), progress=False)
        store = Store.open(data / "store")
        frame = load_cohort(data / "cohort.yaml", SPEC.outputs).frame
        frame[ID] = frame[ID].astype(str)
        target = frame.set_index(ID)[SPEC.outputs[0]]
        usable = sorted(set(target.index[target.notna()]) & store.usable_ids)
        order = list(np.random.default_rng(0).permutation(usable))
        test_ids, pool = order[: args.test], order[args.test:]
        if len(pool) < 5 * max(sizes) // 4:
            raise SystemExit(f"{len(pool)} labelled participants outside the test set; need {5 * max(sizes) // 4}")
        (work / "test_ids.txt").write_text("\n".join(test_ids) + "\n")
        pre = pretrain_run(PretrainConfig(stores=(str(data / "store"),), out=str(work / "pre"),
                                          exclude_ids=str(work / "test_ids.txt"), fit=FitConfig(
                                              max_epochs=args.pretrain_epochs, early_stopping=10, lr_patience=5,
                                              lr=1e-3)), progress=False)
        encoder_state = load_bundle(pre.encoder_path, allow_encoder=True).state_dict
        test = arrays_for(store, frame, test_ids)
        y, lvh = test.target[:, 0].astype(float), frame.set_index(ID).loc[test_ids, "LVH"].to_numpy(int)
        fit_config = FitConfig(max_epochs=args.max_epochs, early_stopping=args.patience, lr_patience=5)
        runs: list[dict] = []
        predictions: dict[tuple[str, int, int], np.ndarray] = {}
        for seed in range(args.seeds):
            shuffled = list(np.random.default_rng(100 + seed).permutation(pool))
            for size in sizes:
                n_val = max(50, size // 4)
                train_ids, val_ids = shuffled[:size], shuffled[size: size + n_val]
                train, val = arrays_for(store, frame, train_ids), arrays_for(store, frame, val_ids)
                for arm in ("scratch", "pretrained", "probe"):
                    predicted, info = train_arm(arm, train, val, test, encoder_state, seed, fit_config)
                    predictions[(arm, size, seed)] = predicted
                    runs.append({"arm": arm, "size": size, "seed": seed, **score(y, lvh, predicted, seed), **info})
                ridge = ridge_arm(store.index, train_ids + val_ids, test_ids,
                                  target.loc[train_ids + val_ids].to_numpy(float))
                predictions[("ridge", size, seed)] = ridge
                runs.append({"arm": "ridge", "size": size, "seed": seed, **score(y, lvh, ridge, seed),
                             "note": "trained on the training and validation participants (no early stopping)"})
                print(pd.DataFrame([r for r in runs if r["size"] == size and r["seed"] == seed])[
                    ["arm", "size", "seed", "r2", "auroc"]].to_string(index=False), flush=True)
        differences = []
        for (arm, size, seed), predicted in predictions.items():
            if arm == "scratch":
                continue
            differences.append({"a": f"{arm}@{size}", "b": f"scratch@{size}", "seed": seed,
                                **paired(y, lvh, predicted, predictions[("scratch", size, seed)], seed)})
            if arm == "pretrained" and ("scratch", 4 * size, seed) in predictions:
                differences.append({"a": f"pretrained@{size}", "b": f"scratch@{4 * size}", "seed": seed,
                                    **paired(y, lvh, predicted, predictions[("scratch", 4 * size, seed)], seed)})
        result = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "n_test": len(test_ids), "n_pool": len(pool), "pretrain": pre.summary, "runs": runs,
                  "paired_differences": differences, "loadavg_start": load, "loadavg_end": os.getloadavg(),
                  "seconds": round(time.perf_counter() - started, 1),
                  "not_measured": "10 s rhythm-strip models and pre-training on the external cohort (not built yet)"}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=float))
        print(pd.DataFrame(differences).to_string(index=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
