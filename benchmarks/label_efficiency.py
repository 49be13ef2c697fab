"""Label efficiency of self-supervised pre-training (issue 23), on the synthetic cohort, paired and converged.

One synthetic cohort is generated and prepared once. A fixed test set (``--test``) is drawn first; the encoder is
pre-trained (``aiecg pretrain``'s workflow, masked reconstruction) on every other usable ECG, labelled or not (the
test ECGs are excluded). For each labelled-set size and seed, the same training participants (and a validation
set a quarter their size, at least 50) are used by every arm:

- ``scratch``: the FCN from random initialisation;
- ``pretrained``: the FCN started from the encoder, all weights fine-tuned;
- ``probe``: the encoder frozen, only the head trained (a linear probe with the FCN's two-layer head);
- ``ridge``: ridge regression (RidgeCV) on the store's measurements of the median beat;
- ``svr``: support vector regression (RBF kernel, C chosen by 3-fold cross-validation) on the same measurements;
- ``rhythm`` (at the sizes of ``--rhythm-sizes``, default the largest): an InceptionTime network (Ismail Fawaz et
  al. 2020; ``aiecg train --arch inception1d --input rhythm``) from random initialisation on the 10 s rhythm strips
  (250 Hz, ``aiecg prepare --strips``) instead of the median beat: the median beat against the rhythm strip.

Deep models are ECG-only (no clinical variables, so the comparison is about the ECG representation), predict
indexed LV mass, and train to early stopping (``--max-epochs``, patience ``--patience``). Every arm is scored on
the same test participants: R² of indexed LV mass and the AUROC of the predicted value for LVH, with paired
bootstrap intervals (the project's one bootstrap) of the differences to scratch at the same size, and of
pre-trained at size n against scratch at 4n.

The external question: a second synthetic cohort with the external domain shift (other gain, noise, mains and
population; ids disjoint from the internal cohort's) gives a fixed external test set and an unlabelled external
pool. A second encoder is pre-trained on the internal and the external pools together (every test ECG of both
cohorts excluded), and at the largest labelled size the arm ``pretrained_external`` starts from it. Every arm is
also scored on the external test set; the drop from internal to external AUROC of each arm is compared with
scratch's, with an interval from resampling both test sets independently (they hold different participants).

``--work DIR`` keeps the cohorts, stores, encoders and every arm's predictions there, so that an interrupted run
resumes where it stopped (the partial result is written after every seed). Writes
``benchmarks/results/label_efficiency.json``::

    .venv/bin/python benchmarks/label_efficiency.py --work runs/label_efficiency   # 8,000 + 3,000 participants
    .venv/bin/python benchmarks/label_efficiency.py --quick               # a smaller run that fits a busy machine
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
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVR

from aiecg.bundle import load_bundle
from aiecg.config import FitConfig, PretrainConfig
from aiecg.data.cohort import ID, IS_MALE, load_cohort
from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling
from aiecg.data.prepare import PrepareConfig, prepare_store
from aiecg.data.store import Store
from aiecg.data.targets import target_spec
from aiecg.ecg import MODEL_LEADS
from aiecg.evaluate.bootstrap import bootstrap_ci, resample_indices
from aiecg.evaluate.metrics import compute_auroc
from aiecg.evaluate.stats import r_squared
from aiecg.models import create_model
from aiecg.predict import predict
from aiecg.runio import partial_dir
from aiecg.signal.strip import StripConfig
from aiecg.synth import EXTERNAL_SHIFT, SynthConfig, generate_cohort
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


def arrays_for(store: Store, frame: pd.DataFrame, ids: list[str], rhythm: bool = False) -> Arrays:
    """The ECG-only arrays of ``ids``: median beats, or with ``rhythm`` the 10 s rhythm strips."""
    rows = frame.set_index(ID).loc[ids]
    ecg = store.strips_of(ids, MODEL_LEADS) if rhythm else store.medians(ids, MODEL_LEADS)
    return Arrays(np.array(ids), rows[IS_MALE].to_numpy(np.int64), ecg,
                  np.zeros((len(ids), 0), np.float32), rows[list(SPEC.outputs)].to_numpy(np.float32))


def train_arm(arm: str, train: Arrays, val: Arrays, test: Arrays, encoder: dict | None, seed: int,
              fit_config: FitConfig) -> tuple[np.ndarray, dict]:
    scaling = TargetScaling.fit(train.target)
    torch.manual_seed(seed)
    model = create_model("inception1d" if arm == "rhythm" else "fcn", len(MODEL_LEADS), train.ecg.shape[2], 0, 1)
    config = dataclasses.replace(fit_config, seed=seed)
    if arm not in ("scratch", "rhythm"):
        start_from_encoder(model, encoder, freeze=arm == "probe")
        if arm == "probe":
            config = dataclasses.replace(config, freeze_batchnorm=True)
    result = fit(model, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(), config, None,
                 progress=False)
    predicted = predict(model, test.ecg, test.meta, SPEC, scaling)[:, 0]
    return predicted, {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                       "seconds": round(result.seconds, 1)}


def measurement_arm(arm: str, index: pd.DataFrame, train_ids: list[str], test_ids: list[str],
                    y: np.ndarray) -> np.ndarray:
    """Ridge (``arm`` ``ridge``) or SVR (``svr``) on the standardised measurements, missing values imputed by the
    training median; the hyperparameter by cross-validation on the training rows."""
    columns = measurement_columns(index)
    table = index.set_index("id")[columns]
    x_train, x_test = table.loc[train_ids].to_numpy(float), table.loc[test_ids].to_numpy(float)
    centre = np.nanmedian(x_train, axis=0)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    x_train, x_test = (np.where(np.isnan(x), centre, x) for x in (x_train, x_test))
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    if arm == "ridge":
        model = RidgeCV(alphas=np.logspace(-2, 4, 25)).fit((x_train - mean) / sd, y)
    else:
        model = GridSearchCV(SVR(kernel="rbf", gamma="scale"), {"C": [1.0, 3.0, 10.0, 30.0]}, cv=3).fit(
            (x_train - mean) / sd, y).best_estimator_
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


def drop_difference(internal: tuple[np.ndarray, np.ndarray, np.ndarray], external: tuple[np.ndarray, np.ndarray,
                    np.ndarray], seed: int, n_resamples: int = 1000) -> list[float]:
    """(internal - external AUROC) of arm a minus that of arm b, each tuple (lvh, a, b); a negative value means a
    loses less than b on the external cohort. Percentile interval from resampling the two test sets independently,
    each stratified by LVH (the project's resampler)."""
    def change(lvh, a, b):
        return compute_auroc(lvh, a) - compute_auroc(lvh, b)

    estimate = change(*internal) - change(*external)
    rng = np.random.default_rng(seed)
    inside = np.concatenate(list(resample_indices(len(internal[0]), n_resamples, rng, internal[0])))
    outside = np.concatenate(list(resample_indices(len(external[0]), n_resamples, rng, external[0])))
    values = np.array([change(*(x[i] for x in internal)) - change(*(x[j] for x in external))
                       for i, j in zip(inside, outside, strict=True)])
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return [float(estimate), float(low), float(high)]


def cohort(root: Path, config: SynthConfig) -> tuple[Store, pd.DataFrame]:
    """Generate (once) and prepare (resuming) a synthetic cohort, keeping the 10 s rhythm strips at 250 Hz; its
    store and cohort table."""
    if not (root / "cohort.yaml").exists():
        generate_cohort(root, config, progress=False)
    prepare_store(root / "cohort.yaml", root / "store", PrepareConfig(store_beats=False, strips=StripConfig()),
                  progress=False)
    frame = load_cohort(root / "cohort.yaml", SPEC.outputs).frame
    frame[ID] = frame[ID].astype(str)
    return Store.open(root / "store"), frame


def labelled_ids(store: Store, frame: pd.DataFrame) -> list[str]:
    target = frame.set_index(ID)[SPEC.outputs[0]]
    return sorted(set(target.index[target.notna()]) & store.usable_ids)


def encoder(out: Path, stores: list[Path], exclude: Path, epochs: int) -> tuple[dict, dict]:
    """Pre-train (or reuse, or resume) an encoder; its state dict and pretrain.json."""
    if not (out / "encoder.aiecg").exists():
        pretrain_run(PretrainConfig(stores=tuple(str(s) for s in stores), out=str(out), exclude_ids=str(exclude),
                                    resume=(partial_dir(out) / "checkpoint.pt").exists(),
                                    fit=FitConfig(max_epochs=epochs, early_stopping=10, lr_patience=5, lr=1e-3)),
                     progress=False)
    return (load_bundle(out / "encoder.aiecg", allow_encoder=True).state_dict,
            json.loads((out / "pretrain.json").read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8000, help="participants of the internal synthetic cohort")
    parser.add_argument("--test", type=int, default=1000, help="fixed internal test participants")
    parser.add_argument("--external-n", type=int, default=3000, help="participants of the external cohort")
    parser.add_argument("--external-test", type=int, default=1000, help="fixed external test participants")
    parser.add_argument("--sizes", default="250,500,1000,2000", help="labelled training set sizes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--patience", type=int, default=15)
    parser.add_argument("--pretrain-epochs", type=int, default=100)
    parser.add_argument("--rhythm-sizes", default=None,
                        help="labelled sizes at which the rhythm-strip arm runs (default: the largest size)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep (and resume from) the cohorts, encoders and predictions here; default: a "
                             "temporary folder removed at the end")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 + 1,000 participants, 400 + 400 test, sizes 100,200,400,800, 1 seed, shorter "
                             "training")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "label_efficiency.json")
    args = parser.parse_args()
    if args.quick:
        args.n, args.test, args.external_n, args.external_test = 2000, 400, 1000, 400
        args.sizes, args.seeds, args.max_epochs, args.patience, args.pretrain_epochs = "100,200,400,800", 1, 80, 10, 40
    sizes = [int(s) for s in args.sizes.split(",")]
    rhythm_sizes = [int(s) for s in args.rhythm_sizes.split(",")] if args.rhythm_sizes else [max(sizes)]
    started, load = time.perf_counter(), os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="aiecg-label-efficiency-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        store, frame = cohort(work / "internal", SynthConfig(n=args.n, seed=7, lvh_prevalence=0.2, workers=2))
        ext_store, ext_frame = cohort(work / "external", SynthConfig(
            n=args.external_n, seed=8, lvh_prevalence=0.2, workers=2, shift=EXTERNAL_SHIFT, name="synthetic-external",
            first_eid=9_000_001))
        order = list(np.random.default_rng(0).permutation(labelled_ids(store, frame)))
        test_ids, pool = order[: args.test], order[args.test:]
        ext_order = list(np.random.default_rng(1).permutation(labelled_ids(ext_store, ext_frame)))
        ext_test_ids = ext_order[: args.external_test]
        if len(pool) < 5 * max(sizes) // 4:
            raise SystemExit(f"{len(pool)} labelled participants outside the test set; need {5 * max(sizes) // 4}")
        (work / "test_ids.txt").write_text("\n".join(test_ids + ext_test_ids) + "\n")
        internal_state, internal_summary = encoder(work / "pre_internal", [work / "internal" / "store"],
                                                   work / "test_ids.txt", args.pretrain_epochs)
        external_state, external_summary = encoder(work / "pre_internal_external", [
            work / "internal" / "store", work / "external" / "store"], work / "test_ids.txt", args.pretrain_epochs)
        test, ext_test = arrays_for(store, frame, test_ids), arrays_for(ext_store, ext_frame, ext_test_ids)
        y, lvh = test.target[:, 0].astype(float), frame.set_index(ID).loc[test_ids, "LVH"].to_numpy(int)
        ext_y = ext_test.target[:, 0].astype(float)
        ext_lvh = ext_frame.set_index(ID).loc[ext_test_ids, "LVH"].to_numpy(int)
        target = frame.set_index(ID)[SPEC.outputs[0]]
        fit_config = FitConfig(max_epochs=args.max_epochs, early_stopping=args.patience, lr_patience=5)
        runs: list[dict] = []
        predictions: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
        cache = work / "predictions"
        cache.mkdir(exist_ok=True)
        result: dict = {}
        for seed in range(args.seeds):
            shuffled = list(np.random.default_rng(100 + seed).permutation(pool))
            for size in sizes:
                n_val = max(50, size // 4)
                train_ids, val_ids = shuffled[:size], shuffled[size: size + n_val]
                train, val = arrays_for(store, frame, train_ids), arrays_for(store, frame, val_ids)
                arms = (["scratch", "pretrained", "probe", "ridge", "svr"]
                        + (["pretrained_external"] if size == max(sizes) else [])
                        + (["rhythm"] if size in rhythm_sizes else []))
                for arm in arms:
                    saved = cache / f"{arm}_{size}_{seed}.npz"
                    if saved.exists():
                        with np.load(saved) as stored:
                            pair, info = (stored["internal"], stored["external"]), json.loads(str(stored["info"]))
                    elif arm in ("ridge", "svr"):
                        index = pd.concat([store.index, ext_store.index], ignore_index=True)
                        both = measurement_arm(arm, index, train_ids + val_ids, test_ids + ext_test_ids,
                                               target.loc[train_ids + val_ids].to_numpy(float))
                        pair = (both[: len(test_ids)], both[len(test_ids):])
                        info = {"note": "trained on the training and validation participants (no early stopping)"}
                    elif arm == "rhythm":  # the strips of the same participants, loaded only for this arm
                        strip_test = [arrays_for(s, f, ids, rhythm=True) for s, f, ids in
                                      ((store, frame, test_ids), (ext_store, ext_frame, ext_test_ids))]
                        both_test = Arrays(*(np.concatenate([getattr(a, f.name) for a in strip_test])
                                             for f in dataclasses.fields(Arrays)))
                        predicted, info = train_arm("rhythm", arrays_for(store, frame, train_ids, rhythm=True),
                                                    arrays_for(store, frame, val_ids, rhythm=True), both_test, None,
                                                    seed, fit_config)
                        pair = (predicted[: len(test_ids)], predicted[len(test_ids):])
                    else:
                        state = external_state if arm == "pretrained_external" else internal_state
                        model_arm = "pretrained" if arm == "pretrained_external" else arm
                        both_test = Arrays(*(np.concatenate([getattr(test, f.name), getattr(ext_test, f.name)])
                                             for f in dataclasses.fields(Arrays)))
                        predicted, info = train_arm(model_arm, train, val, both_test, state, seed, fit_config)
                        pair = (predicted[: len(test_ids)], predicted[len(test_ids):])
                    if not saved.exists():
                        np.savez(saved, internal=pair[0], external=pair[1], info=json.dumps(info))
                    predictions[(arm, size, seed)] = pair
                    runs.append({"arm": arm, "size": size, "seed": seed, **score(y, lvh, pair[0], seed),
                                 "external": score(ext_y, ext_lvh, pair[1], seed), **info})
                print(pd.DataFrame([r for r in runs if r["size"] == size and r["seed"] == seed])[
                    ["arm", "size", "seed", "r2", "auroc"]].to_string(index=False), flush=True)
            result = summarise(args, runs, predictions, (y, lvh), (ext_y, ext_lvh), sizes,
                               {"internal": internal_summary, "internal_external": external_summary},
                               len(test_ids), len(pool), load, started)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2, default=float))
        print(pd.DataFrame(result["paired_differences"]).to_string(index=False))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def summarise(args, runs, predictions, internal, external, sizes, pretrain, n_test, n_pool, load, started) -> dict:
    """Paired differences (same test participants) and the external-drop comparison of the arms run so far."""
    (y, lvh), (_, ext_lvh) = internal, external
    differences, drops = [], []
    for (arm, size, seed), (predicted, ext_predicted) in predictions.items():
        if arm == "scratch":
            continue
        scratch = predictions[("scratch", size, seed)]
        differences.append({"a": f"{arm}@{size}", "b": f"scratch@{size}", "seed": seed,
                            **paired(y, lvh, predicted, scratch[0], seed)})
        if arm in ("pretrained", "probe") and ("scratch", 4 * size, seed) in predictions:
            differences.append({"a": f"{arm}@{size}", "b": f"scratch@{4 * size}", "seed": seed,
                                **paired(y, lvh, predicted, predictions[("scratch", 4 * size, seed)][0], seed)})
        if arm in ("pretrained", "probe", "pretrained_external", "rhythm") and size == max(sizes):
            for baseline in ("ridge", "svr"):
                differences.append({"a": f"{arm}@{size}", "b": f"{baseline}@{size}", "seed": seed,
                                    **paired(y, lvh, predicted, predictions[(baseline, size, seed)][0], seed)})
            drops.append({"a": f"{arm}@{size}", "b": f"scratch@{size}", "seed": seed,
                          "auroc_drop_a_minus_b": drop_difference((lvh, predicted, scratch[0]),
                                                                  (ext_lvh, ext_predicted, scratch[1]), seed)})
    return {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("work", "out")},
            "n_test": n_test, "n_pool": n_pool, "pretrain": pretrain, "runs": runs,
            "paired_differences": differences, "external_drop_differences": drops, "loadavg_start": load,
            "loadavg_end": os.getloadavg(), "seconds": round(time.perf_counter() - started, 1),
            "not_measured": "pre-training on rhythm strips (aiecg pretrain --input rhythm) is not an arm: two more "
                            "encoders on 2,500-sample strips would not fit the 90-minute budget"}


if __name__ == "__main__":
    main()
