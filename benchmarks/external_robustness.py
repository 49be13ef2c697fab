"""What shrinks the drop from internal to external AUROC (issue 23's external question), on the label-efficiency
benchmark's cohorts, test sets and 2,000-label training sets, paired and converged.

``label_efficiency.py`` found that pre-training on the external cohort's unlabelled ECGs (masked reconstruction)
does not shrink the drop: its arms drop as much as ``pretrained`` and more than ``scratch``. The external cohort's
docstring (:data:`aiecg.synth.EXTERNAL_SHIFT`) says why a reconstruction objective cannot help: a ranking measure
is unchanged by a shift that moves every record the same way; what lowers it is variation between records (here
the chest electrodes' placement in routine care) that the training data never showed, and reconstructing the
external ECGs teaches the encoder what they look like, not that their differences in placement do not matter.
Two ways of using what is known or what is unlabelled are compared on the same participants:

- ``*_electrode``: the same fine-tuning with the ``electrode`` augmentation (:class:`aiecg.data.augment.
  ElectrodePlacement`, probability 0.8, its literature defaults: chest electrodes moved together by N(0, 0.5)
  lead spacings, each chest lead's gain by a log-normal of SD 0.2), the other augmentations off;
- ``+adabn`` (a scoring variant of every arm, no training): the external predictions after re-estimating the
  batch-norm statistics on the external cohort's unlabelled ECGs outside its test set (AdaBN: Li et al.,
  "Revisiting batch normalization for practical domain adaptation", ICLR Workshop 2017), the unlabelled-data way.

Arms: ``scratch`` and ``pretrained_external`` (the FCN from the encoder pre-trained on the internal and external
pools), each with and without the augmentation, 3 seeds. Each arm's drop (internal minus external AUROC of the
predicted indexed LV mass for LVH) is given with a percentile interval from resampling the two test sets
independently; so are its difference from scratch's drop, its drop minus half of scratch's (the target, halving
the drop, is met where that interval lies below 0) and its ratio to scratch's, and the oracle's drop, the part
of the drop that no ECG model can avoid (the external population and its noisier recordings). Reuses ``--work``
of ``label_efficiency.py`` (cohorts and encoders are the same); the scratch arm here repeats that benchmark's
``scratch@2000``; predictions are kept in ``--work``, so a rerun only rescores. Writes
``benchmarks/results/external_robustness.json``::

    .venv/bin/python benchmarks/external_robustness.py --work runs/label_efficiency
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import time
from pathlib import Path

import label_efficiency as le
import numpy as np
import torch
from torch import nn

from aiecg.config import AugmentConfig, FitConfig
from aiecg.data.cohort import ID
from aiecg.data.dataset import Arrays
from aiecg.ecg import MODEL_LEADS
from aiecg.evaluate.metrics import auroc_rows
from aiecg.predict import predict
from aiecg.signal.strip import StripConfig
from aiecg.synth import EXTERNAL_SHIFT, SynthConfig

ROOT = Path(__file__).resolve().parents[1]
ELECTRODE = AugmentConfig({"crop_resize": {"probability": 0}, "amplitude": {"probability": 0},
                           "noise": {"probability": 0}, "shift": {"probability": 0},
                           "electrode": {"probability": 0.8}})
ARMS = {"scratch": (False, None), "scratch_electrode": (False, ELECTRODE),
        "pretrained_external": (True, None), "pretrained_external_electrode": (True, ELECTRODE)}
"""arm -> (starts from the internal + external encoder, augmentation of the fine-tuning batches)."""


def adapt_batch_norm(model: nn.Module, ecg: np.ndarray, batch: int = 256) -> nn.Module:
    """A copy of ``model`` whose batch-norm statistics are re-estimated (cumulative average over batches) on the
    unlabelled ECGs ``ecg`` [n, leads, samples]; every weight stays as trained (AdaBN)."""
    adapted = copy.deepcopy(model).eval()
    norms = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("the model has no batch-norm layers to adapt")
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    with torch.no_grad():
        for start in range(0, len(ecg), batch):
            adapted(torch.from_numpy(np.ascontiguousarray(ecg[start: start + batch], dtype=np.float32)))
    return adapted.eval()


def train(arm: str, train_set: Arrays, val: Arrays, test: Arrays, ext_pool: np.ndarray, encoder: dict, seed: int,
          fit_config: FitConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """One arm's predictions on the test participants (internal then external) as trained and with its
    batch-norm statistics adapted to the external pool, and what its training reported."""
    pretrained, augment = ARMS[arm]
    predicted, info, (model, scaling) = le.train_arm("pretrained" if pretrained else "scratch", train_set, val, test,
                                                     encoder, seed, fit_config, augment)
    adapted = predict(adapt_batch_norm(model, ext_pool), test.ecg, test.meta, le.SPEC, scaling)[:, 0]
    return predicted, adapted, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True,
                        help="label_efficiency.py's folder (its cohorts and encoders are made there if missing)")
    parser.add_argument("--n", type=int, default=8000, help="internal participants (label_efficiency's default)")
    parser.add_argument("--test", type=int, default=1000, help="fixed internal test participants")
    parser.add_argument("--external-n", type=int, default=3000, help="external participants")
    parser.add_argument("--external-test", type=int, default=1000, help="fixed external test participants")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=2000, help="labelled training participants")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "external_robustness.json")
    args = parser.parse_args()
    started, load = time.perf_counter(), os.getloadavg()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    clock = le.StageClock(work / "timings_external_robustness.json")
    strips = StripConfig(fs=100.0)
    with clock.stage("cohorts: generate and prepare"):  # the label-efficiency cohorts, same seeds and sizes
        store, frame, truth = le.cohort(work / "internal", SynthConfig(n=args.n, seed=7, lvh_prevalence=0.2,
                                                                       workers=2), strips)
        ext_store, ext_frame, ext_truth = le.cohort(work / "external", SynthConfig(
            n=args.external_n, seed=8, lvh_prevalence=0.2, workers=2, shift=EXTERNAL_SHIFT, name="synthetic-external",
            first_eid=9_000_001), strips)
    order = list(np.random.default_rng(0).permutation(le.labelled_ids(store, frame)))
    test_ids, pool = order[: args.test], order[args.test:]
    ext_order = list(np.random.default_rng(1).permutation(le.labelled_ids(ext_store, ext_frame)))
    ext_test_ids = ext_order[: args.external_test]
    (work / "test_ids.txt").write_text("\n".join(test_ids + ext_test_ids) + "\n")
    with clock.stage("encoder: internal and external pools"):
        encoder, _ = le.encoder(work / "pre_internal_external", [work / "internal" / "store",
                                                                 work / "external" / "store"],
                                work / "test_ids.txt", args.pretrain_epochs)
    ext_pool_ids = sorted(set(ext_frame[ID]) & set(ext_store.usable_ids) - set(ext_test_ids))
    ext_pool = ext_store.medians(ext_pool_ids, MODEL_LEADS)
    test, ext_test = le.arrays_for(store, frame, test_ids), le.arrays_for(ext_store, ext_frame, ext_test_ids)
    both_test = Arrays(*(np.concatenate([getattr(test, f.name), getattr(ext_test, f.name)])
                         for f in dataclasses.fields(Arrays)))
    lvh = frame.set_index(ID).loc[test_ids, "LVH"].to_numpy(int)
    ext_lvh = ext_frame.set_index(ID).loc[ext_test_ids, "LVH"].to_numpy(int)
    n_test = len(test_ids)
    fit_config = FitConfig(max_epochs=args.max_epochs, early_stopping=args.patience,
                           lr_patience=max(1, args.patience // 2))
    cache = work / "predictions_external_robustness"
    cache.mkdir(exist_ok=True)
    oracle_drop = le.auroc_drop((lvh, truth.loc[test_ids, "oracle_ilvm"].to_numpy(float)),
                             (ext_lvh, ext_truth.loc[ext_test_ids, "oracle_ilvm"].to_numpy(float)), 0)
    rows, runs = [], []
    for seed in range(args.seeds):
        shuffled = list(np.random.default_rng(100 + seed).permutation(pool))  # label_efficiency's draw
        train_ids, val_ids = shuffled[: args.size], shuffled[args.size: args.size + max(50, args.size // 4)]
        train_set, val = le.arrays_for(store, frame, train_ids), le.arrays_for(store, frame, val_ids)
        scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for arm in ARMS:
            saved = cache / f"{arm}_{args.size}_{seed}.npz"
            with clock.stage(f"seed {seed}: {arm}"):
                if saved.exists():
                    with np.load(saved) as stored:
                        predicted, adapted, info = stored["predicted"], stored["adapted"], json.loads(
                            str(stored["info"]))
                else:
                    predicted, adapted, info = train(arm, train_set, val, both_test, ext_pool, encoder, seed,
                                                     fit_config)
                    np.savez(saved, predicted=predicted, adapted=adapted, info=json.dumps(info))
            runs.append({"arm": arm, "seed": seed, **info})
            scores[arm] = (predicted[:n_test], predicted[n_test:])
            scores[f"{arm}+adabn"] = (predicted[:n_test], adapted[n_test:])
        baseline = scores["scratch"]
        for name, (inside, outside) in scores.items():
            rows.append({"arm": name, "seed": seed, "internal_auroc": float(auroc_rows(lvh, inside)),
                         "external_auroc": float(auroc_rows(ext_lvh, outside)),
                         **le.auroc_drop((lvh, inside), (ext_lvh, outside), seed,
                                      None if name == "scratch" else baseline)})
        print(json.dumps(rows[-len(scores):], indent=1), flush=True)
        result = {"size": args.size, "n_test": n_test, "n_external_test": len(ext_test_ids),
                  "n_external_pool": len(ext_pool_ids), "augmentation": ELECTRODE.transforms["electrode"],
                  "oracle_drop": oracle_drop["drop"], "rows": rows, "runs": runs,
                  "loadavg_start": load, "loadavg_end": os.getloadavg(),
                  "seconds_this_process": round(time.perf_counter() - started, 1),
                  "timings": {**clock.seconds, "total": round(sum(clock.seconds.values()), 1)}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
