"""Label efficiency of self-supervised pre-training (issue 23), on the synthetic cohort, paired and converged.

One synthetic cohort is generated and prepared once. A fixed test set (``--test``) is drawn first; the encoder is
pre-trained (``aiecg pretrain``'s workflow, masked reconstruction) on every other usable ECG, labelled or not (the
test ECGs are excluded). For each labelled-set size and seed, the same training participants (and a validation
set a quarter their size, at least 50) are used by every arm:

- ``scratch``: the FCN from random initialisation;
- ``pretrained``: the FCN started from the encoder, all weights fine-tuned;
- ``probe``: a linear probe (as He et al. 2022 evaluate masked autoencoders): ridge regression (RidgeCV) on the
  frozen encoder's pooled features, fitted on the training and validation participants;
- ``ridge``: ridge regression (RidgeCV) on the store's measurements of the median beat;
- ``svr``: support vector regression (RBF kernel, C chosen by 3-fold cross-validation) on the same measurements;
- ``rhythm`` (at the sizes of ``--rhythm-sizes``, default the largest): a 1-D ResNet18 at half width (Soto et al.
  2022 after He et al. 2016; ``aiecg train --arch resnet18 --input rhythm --model-kwargs widths=[32,64,128,256]``)
  from random initialisation on the 10 s rhythm strips (``aiecg prepare --strips``
  at ``--strip-fs``, 100 Hz by default, the rate of PTB-XL's low-rate records that Strodthoff et al. 2021
  benchmark on) instead of the median beat: the median beat against the rhythm strip.

Deep models are ECG-only (no clinical variables, so the comparison is about the ECG representation), predict
indexed LV mass, and train to early stopping (``--max-epochs``, patience ``--patience``). Every arm is scored on
the same test participants: R² of indexed LV mass and the AUROC of the predicted value for LVH, with paired
bootstrap intervals (the project's one bootstrap) of the differences to scratch at the same size, of pre-trained
at size n against scratch at 4n, and of the deep arms against ridge and SVR at the largest size. The generator's
oracle (its posterior mean of indexed LV mass and probability of LVH given the ECG and clinical variables,
:mod:`aiecg.synth.oracle`; read from the truth table, never offered to a method) is scored on the same
participants, and every arm's R² is also given as a share of the oracle's, with a paired interval at the largest
size: how much of what is learnable each arm learns.

The external question: a second synthetic cohort with the external domain shift (other gain, noise, mains and
population; ids disjoint from the internal cohort's) gives a fixed external test set and an unlabelled external
pool. A second encoder is pre-trained on the internal and the external pools together (every test ECG of both
cohorts excluded), and at the largest labelled size the arm ``pretrained_external`` starts from it. Every arm is
also scored on the external test set; the drop from internal to external AUROC of each arm is compared with
scratch's (and ``pretrained_external``'s with ``pretrained``'s: the effect of the external unlabelled ECGs
alone), with an interval from resampling both test sets independently (they hold different participants).

What keeps it within 90 minutes on 2 CPU cores: a pool of about 8,800 unlabelled ECGs (not 20,000), encoders
pre-trained for 10 epochs, the rhythm arm at the largest size only and on a half-width ResNet at 100 Hz (an
InceptionTime epoch on 2,000 strips at 250 Hz takes over 5 minutes here), the probe as a ridge on frozen features,
and bootstraps evaluated on blocks of resamples at once. ``timings`` in the result gives each stage's wall time,
summed over every process that worked in ``--work``.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVR
from torch import nn

from aiecg.bundle import load_bundle
from aiecg.config import AugmentConfig, FitConfig, PretrainConfig
from aiecg.data.cohort import ID, IS_MALE, load_cohort
from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling
from aiecg.data.prepare import PrepareConfig, prepare_store
from aiecg.data.store import Store
from aiecg.data.targets import target_spec
from aiecg.ecg import MODEL_LEADS
from aiecg.evaluate.bootstrap import bootstrap_ci, resample_indices
from aiecg.evaluate.metrics import auroc_rows
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
RHYTHM_ARCH, RHYTHM_KWARGS = "resnet18", {"widths": (32, 64, 128, 256)}  # ResNet18 at half width


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
              fit_config: FitConfig, augment: AugmentConfig | None = None
              ) -> tuple[np.ndarray, dict, tuple[nn.Module, TargetScaling]]:
    """Train one deep arm (``scratch``, ``pretrained`` from ``encoder``, or ``rhythm``) to early stopping, with
    ``augment`` on the training batches if given; its predictions on ``test``, what training reported, and the
    trained model with its target scaling (for :func:`aiecg.predict.predict`)."""
    scaling = TargetScaling.fit(train.target)
    torch.manual_seed(seed)
    if arm == "rhythm":
        model = create_model(RHYTHM_ARCH, len(MODEL_LEADS), train.ecg.shape[2], 0, 1, **RHYTHM_KWARGS)
    else:
        model = create_model("fcn", len(MODEL_LEADS), train.ecg.shape[2], 0, 1)
    config = dataclasses.replace(fit_config, seed=seed, augment=augment)
    if arm == "pretrained":
        start_from_encoder(model, encoder)
    result = fit(model, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(), config, None,
                 progress=False)
    predicted = predict(model, test.ecg, test.meta, SPEC, scaling)[:, 0]
    return predicted, {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                       "seconds": round(result.seconds, 1)}, (model, scaling)


def measurement_arm(arm: str, index: pd.DataFrame, train_ids: list[str], test_ids: list[str],
                    y: np.ndarray) -> np.ndarray:
    """Ridge (``arm`` ``ridge``) or SVR (``svr``) on the standardised measurements."""
    table = index.set_index("id")[measurement_columns(index)]
    return regression(arm, table.loc[train_ids].to_numpy(float), table.loc[test_ids].to_numpy(float), y)


def regression(arm: str, x_train: np.ndarray, x_test: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge (``ridge``) or RBF SVR (``svr``) on standardised columns, missing values imputed by the training
    median; the hyperparameter by cross-validation on the training rows. The test rows' predictions."""
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


def encoder_features(state: dict, parts: list[Arrays], batch: int = 256) -> list[np.ndarray]:
    """The frozen encoder's pooled features (global average over time, eval mode) of each part's ECGs."""
    model = create_model("fcn", len(MODEL_LEADS), parts[0].ecg.shape[2], 0, 1)
    start_from_encoder(model, state, freeze=True)
    model.eval()
    with torch.no_grad():
        return [np.concatenate([model.forward_features(torch.from_numpy(np.ascontiguousarray(
            part.ecg[i: i + batch]))).numpy() for i in range(0, len(part.ecg), batch)]) for part in parts]


def score(y: np.ndarray, lvh: np.ndarray, predicted: np.ndarray, seed: int) -> dict:
    r2 = bootstrap_ci(r_squared, y, predicted, seed=seed, n_resamples=1000)
    auroc = bootstrap_ci(auroc_rows, lvh, predicted, seed=seed, n_resamples=1000, stratify=lvh)
    return {"r2": [r2.estimate, r2.low, r2.high], "auroc": [auroc.estimate, auroc.low, auroc.high]}


def paired(y: np.ndarray, lvh: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int) -> dict:
    """R² and AUROC of ``a`` minus those of ``b`` on the same test participants, with paired intervals."""
    def r2_difference(t, p, q, axis=-1):
        return r_squared(t, p, axis=axis) - r_squared(t, q, axis=axis)

    def auroc_difference(labels, p, q, axis=-1):
        return auroc_rows(labels, p, axis=axis) - auroc_rows(labels, q, axis=axis)

    r2 = bootstrap_ci(r2_difference, y, a, b, seed=seed, n_resamples=1000)
    auroc = bootstrap_ci(auroc_difference, lvh, a, b, seed=seed, n_resamples=1000, stratify=lvh)
    return {"r2_difference": [r2.estimate, r2.low, r2.high], "auroc_difference": [auroc.estimate, auroc.low,
                                                                                   auroc.high]}


def auroc_drop(internal: tuple[np.ndarray, np.ndarray], external: tuple[np.ndarray, np.ndarray], seed: int,
               baseline: tuple[np.ndarray, np.ndarray] | None = None, n_resamples: int = 1000) -> dict:
    """Internal minus external AUROC of one score, each tuple (lvh, score) (``drop``); with ``baseline`` (the
    baseline's internal and external scores, same participants) also the difference from the baseline's drop
    (``minus_baseline``; negative: loses less), the drop minus half the baseline's (``minus_half_baseline``; an
    interval below 0 says the drop is less than half) and the ratio of the drops (``ratio_to_baseline``; its
    interval is unreliable where the baseline's drop comes near 0). Percentile intervals from resampling the two
    test sets independently (they hold different participants), each stratified by LVH, all resamples at once."""
    rng = np.random.default_rng(seed)
    inside = np.concatenate(list(resample_indices(len(internal[0]), n_resamples, rng, internal[0])))
    outside = np.concatenate(list(resample_indices(len(external[0]), n_resamples, rng, external[0])))

    def drop(score_in, score_out, take_in, take_out):
        return auroc_rows(internal[0][take_in], score_in[take_in]) - auroc_rows(external[0][take_out],
                                                                                score_out[take_out])

    def interval(estimate, resampled) -> list[float]:
        return [float(estimate), *map(float, np.nanpercentile(resampled, [2.5, 97.5]))]

    own, own_r = (drop(internal[1], external[1], *take) for take in ((slice(None),) * 2, (inside, outside)))
    result = {"drop": interval(own, own_r)}
    if baseline is not None:
        base, base_r = (drop(*baseline, *take) for take in ((slice(None),) * 2, (inside, outside)))
        result.update(minus_baseline=interval(own - base, own_r - base_r),
                      minus_half_baseline=interval(own - base / 2, own_r - base_r / 2),
                      ratio_to_baseline=interval(own / base, own_r / base_r))
    return result


def drop_difference(internal: tuple[np.ndarray, np.ndarray, np.ndarray], external: tuple[np.ndarray, np.ndarray,
                    np.ndarray], seed: int, n_resamples: int = 1000) -> list[float]:
    """(internal - external AUROC) of arm a minus that of arm b, each tuple (lvh, a, b); a negative value means a
    loses less than b on the external cohort (:func:`auroc_drop`'s ``minus_baseline``)."""
    (lvh, a, b), (ext_lvh, ext_a, ext_b) = internal, external
    return auroc_drop((lvh, a), (ext_lvh, ext_a), seed, (b, ext_b), n_resamples)["minus_baseline"]


def oracle_share(y: np.ndarray, predicted: np.ndarray, oracle: np.ndarray, seed: int) -> list[float]:
    """An arm's R² as a share of the oracle's on the same participants, with a paired percentile interval."""
    def share(t, p, o, axis=-1):
        return r_squared(t, p, axis=axis) / r_squared(t, o, axis=axis)

    interval = bootstrap_ci(share, y, predicted, oracle, seed=seed, n_resamples=1000)
    return [interval.estimate, interval.low, interval.high]


def cohort(root: Path, config: SynthConfig, strips: StripConfig) -> tuple[Store, pd.DataFrame, pd.DataFrame]:
    """Generate (once) and prepare (resuming) a synthetic cohort, keeping the 10 s rhythm strips; its store,
    cohort table and truth table (the oracle's columns, indexed by the store's ids)."""
    if not (root / "cohort.yaml").exists():
        generate_cohort(root, config, progress=False)
    prepare_store(root / "cohort.yaml", root / "store", PrepareConfig(store_beats=False, strips=strips),
                  progress=False)
    truth = pd.read_parquet(root / "truth.parquet")
    truth.index = truth.pop("eid").astype(str)
    frame = load_cohort(root / "cohort.yaml", SPEC.outputs).frame
    frame[ID] = frame[ID].astype(str)
    return Store.open(root / "store"), frame, truth


class StageClock:
    """Wall seconds of each stage, summed over every process that worked in the same folder (a resumed run adds
    its own), kept in ``timings.json`` there."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 1)
            self.path.write_text(json.dumps(self.seconds, indent=1))


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
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=8,
                        help="early-stopping patience (the learning rate halves after half as many epochs)")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--rhythm-sizes", default=None,
                        help="labelled sizes at which the rhythm-strip arm runs (default: the largest size; 0: none)")
    parser.add_argument("--strip-fs", type=float, default=100.0, help="sampling rate of the stored rhythm strips")
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
        args.sizes, args.seeds, args.max_epochs, args.patience, args.pretrain_epochs = "100,200,400,800", 1, 60, 6, 5
    sizes = [int(s) for s in args.sizes.split(",")]
    rhythm_sizes = ([int(s) for s in args.rhythm_sizes.split(",") if int(s) > 0] if args.rhythm_sizes
                    else [max(sizes)])
    started, load = time.perf_counter(), os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="aiecg-label-efficiency-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        clock = StageClock(work / "timings.json")
        strips = StripConfig(fs=args.strip_fs)
        with clock.stage("cohorts: generate and prepare"):
            store, frame, truth = cohort(work / "internal", SynthConfig(n=args.n, seed=7, lvh_prevalence=0.2,
                                                                        workers=2), strips)
            ext_store, ext_frame, ext_truth = cohort(work / "external", SynthConfig(
                n=args.external_n, seed=8, lvh_prevalence=0.2, workers=2, shift=EXTERNAL_SHIFT,
                name="synthetic-external", first_eid=9_000_001), strips)
        order = list(np.random.default_rng(0).permutation(labelled_ids(store, frame)))
        test_ids, pool = order[: args.test], order[args.test:]
        ext_order = list(np.random.default_rng(1).permutation(labelled_ids(ext_store, ext_frame)))
        ext_test_ids = ext_order[: args.external_test]
        if len(pool) < 5 * max(sizes) // 4:
            raise SystemExit(f"{len(pool)} labelled participants outside the test set; need {5 * max(sizes) // 4}")
        (work / "test_ids.txt").write_text("\n".join(test_ids + ext_test_ids) + "\n")
        with clock.stage("encoder: internal pool"):
            internal_state, internal_summary = encoder(work / "pre_internal", [work / "internal" / "store"],
                                                       work / "test_ids.txt", args.pretrain_epochs)
        with clock.stage("encoder: internal and external pools"):
            external_state, external_summary = encoder(work / "pre_internal_external", [
                work / "internal" / "store", work / "external" / "store"], work / "test_ids.txt",
                args.pretrain_epochs)
        test, ext_test = arrays_for(store, frame, test_ids), arrays_for(ext_store, ext_frame, ext_test_ids)
        both_test = Arrays(*(np.concatenate([getattr(test, f.name), getattr(ext_test, f.name)])
                             for f in dataclasses.fields(Arrays)))
        y, lvh = test.target[:, 0].astype(float), frame.set_index(ID).loc[test_ids, "LVH"].to_numpy(int)
        ext_y = ext_test.target[:, 0].astype(float)
        ext_lvh = ext_frame.set_index(ID).loc[ext_test_ids, "LVH"].to_numpy(int)
        oracle = {"internal": (truth.loc[test_ids, "oracle_ilvm"].to_numpy(float),
                               truth.loc[test_ids, "oracle_lvh_prob"].to_numpy(float)),
                  "external": (ext_truth.loc[ext_test_ids, "oracle_ilvm"].to_numpy(float),
                               ext_truth.loc[ext_test_ids, "oracle_lvh_prob"].to_numpy(float))}
        target = frame.set_index(ID)[SPEC.outputs[0]]
        fit_config = FitConfig(max_epochs=args.max_epochs, early_stopping=args.patience,
                               lr_patience=max(1, args.patience // 2))
        runs: list[dict] = []
        predictions: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
        cache = work / "predictions"
        cache.mkdir(exist_ok=True)
        probe_features: dict[str, np.ndarray] = {}
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
                    with clock.stage(f"seed {seed}: {arm} arms"):
                        if saved.exists():
                            with np.load(saved) as stored:
                                pair = (stored["internal"], stored["external"])
                                info = json.loads(str(stored["info"]))
                        else:
                            pair, info = run_arm(arm, seed, size, train_ids, val_ids, train, val, both_test,
                                                 (store, frame), (ext_store, ext_frame), (test_ids, ext_test_ids),
                                                 target, internal_state, external_state, probe_features, fit_config)
                            np.savez(saved, internal=pair[0], external=pair[1], info=json.dumps(info))
                    predictions[(arm, size, seed)] = pair
                    share = float(r_squared(y, pair[0]) / r_squared(y, oracle["internal"][0]))
                    runs.append({"arm": arm, "size": size, "seed": seed, **score(y, lvh, pair[0], seed),
                                 "share_of_oracle_r2": share,
                                 "external": score(ext_y, ext_lvh, pair[1], seed), **info})
                print(pd.DataFrame([r for r in runs if r["size"] == size and r["seed"] == seed])[
                    ["arm", "size", "seed", "r2", "auroc"]].to_string(index=False), flush=True)
            with clock.stage("summary (bootstraps)"):
                result = summarise(args, runs, predictions, (y, lvh), (ext_y, ext_lvh), oracle, sizes,
                                   {"internal": internal_summary, "internal_external": external_summary},
                                   len(test_ids), len(pool), load, started, clock)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2, default=float))
        print(pd.DataFrame(result["paired_differences"]).to_string(index=False))
        print(json.dumps(clock.seconds, indent=1))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run_arm(arm, seed, size, train_ids, val_ids, train, val, both_test, internal, external, tests, target,
            internal_state, external_state, probe_features, fit_config) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """One arm's predictions on the internal and the external test participants, and what its training reported."""
    (store, frame), (ext_store, ext_frame), (test_ids, ext_test_ids) = internal, external, tests
    n_test = len(test_ids)
    if arm in ("ridge", "svr"):
        index = pd.concat([store.index, ext_store.index], ignore_index=True)
        both = measurement_arm(arm, index, train_ids + val_ids, test_ids + ext_test_ids,
                               target.loc[train_ids + val_ids].to_numpy(float))
        return (both[:n_test], both[n_test:]), {
            "note": "trained on the training and validation participants (no early stopping)"}
    if arm == "probe":
        if not probe_features:  # the frozen encoder's features of every pool and test ECG, computed once
            pool_ids = sorted(set(frame[ID]) & set(store.usable_ids) - set(test_ids))
            features = encoder_features(internal_state, [arrays_for(store, frame, pool_ids), both_test])
            probe_features.update(dict(zip(pool_ids, features[0])), test=features[1])
        x_train = np.stack([probe_features[i] for i in train_ids + val_ids])
        both = regression("ridge", x_train, probe_features["test"], target.loc[train_ids + val_ids].to_numpy(float))
        return (both[:n_test], both[n_test:]), {
            "note": "ridge on the frozen encoder's pooled features, fitted on the training and validation participants"}
    if arm == "rhythm":  # the strips of the same participants, loaded only for this arm
        strip_test = [arrays_for(s, f, ids, rhythm=True) for s, f, ids in
                      ((store, frame, test_ids), (ext_store, ext_frame, ext_test_ids))]
        strips_test = Arrays(*(np.concatenate([getattr(a, f.name) for a in strip_test])
                               for f in dataclasses.fields(Arrays)))
        predicted, info, _ = train_arm("rhythm", arrays_for(store, frame, train_ids, rhythm=True),
                                    arrays_for(store, frame, val_ids, rhythm=True), strips_test, None, seed,
                                    fit_config)
        return (predicted[:n_test], predicted[n_test:]), {**info, "arch": RHYTHM_ARCH, "model_kwargs": RHYTHM_KWARGS}
    state = external_state if arm == "pretrained_external" else internal_state
    predicted, info, _ = train_arm("scratch" if arm == "scratch" else "pretrained", train, val, both_test, state, seed,
                                fit_config)
    return (predicted[:n_test], predicted[n_test:]), info


def summarise(args, runs, predictions, internal, external, oracle, sizes, pretrain, n_test, n_pool, load, started,
              clock) -> dict:
    """Paired differences (same test participants) and the external-drop comparison of the arms run so far."""
    (y, lvh), (ext_y, ext_lvh) = internal, external
    differences, drops, shares = [], [], []
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
        if arm in ("pretrained", "pretrained_external", "rhythm", "ridge", "svr", "probe") and size == max(sizes):
            drops.append({"a": f"{arm}@{size}", "b": f"scratch@{size}", "seed": seed,
                          "auroc_drop_a_minus_b": drop_difference((lvh, predicted, scratch[0]),
                                                                  (ext_lvh, ext_predicted, scratch[1]), seed)})
        if arm == "pretrained_external":
            other = predictions[("pretrained", size, seed)]
            drops.append({"a": f"{arm}@{size}", "b": f"pretrained@{size}", "seed": seed,
                          "auroc_drop_a_minus_b": drop_difference((lvh, predicted, other[0]),
                                                                  (ext_lvh, ext_predicted, other[1]), seed)})
    for (arm, size, seed), (predicted, _) in predictions.items():
        if size == max(sizes):
            shares.append({"arm": f"{arm}@{size}", "seed": seed,
                           "share_of_oracle_r2": oracle_share(y, predicted, oracle["internal"][0], seed)})
    oracle_scores = {"internal": score(y, lvh, oracle["internal"][0], 0),
                     "internal_lvh_probability_auroc": score(y, lvh, oracle["internal"][1], 0)["auroc"],
                     "external": score(ext_y, ext_lvh, oracle["external"][0], 0),
                     "external_lvh_probability_auroc": score(ext_y, ext_lvh, oracle["external"][1], 0)["auroc"],
                     "note": "the generator's posterior mean of indexed LV mass (and probability of LVH) given the "
                             "ECG and the clinical variables; the arms see the ECG only"}
    return {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("work", "out")},
            "rhythm_model": {"arch": RHYTHM_ARCH, "model_kwargs": RHYTHM_KWARGS, "strip_fs": args.strip_fs},
            "n_test": n_test, "n_pool": n_pool, "pretrain": pretrain, "oracle": oracle_scores, "runs": runs,
            "paired_differences": differences, "external_drop_differences": drops, "oracle_shares": shares,
            "loadavg_start": load, "loadavg_end": os.getloadavg(),
            "seconds_this_process": round(time.perf_counter() - started, 1),
            "timings": {**clock.seconds, "total": round(sum(clock.seconds.values()), 1)},
            "not_measured": "pre-training on rhythm strips (aiecg pretrain --input rhythm) is not an arm: two more "
                            "encoders on strips would not fit the 90-minute budget; the unlabelled pool is the "
                            "cohorts' ECGs outside the test sets (about 8,800), not 20,000, for the same reason"}


if __name__ == "__main__":
    main()
