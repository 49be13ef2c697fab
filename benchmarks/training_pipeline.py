"""Training-pipeline cost (issue 4): the data pipeline's overhead against the same FCN on in-memory tensors
(batch 32), and peak resident memory when training on a 50,000-participant store.

Writes ``benchmarks/results/training_pipeline.json``::

    .venv/bin/python benchmarks/training_pipeline.py --cohort data/synthetic/cohort.yaml

The 50,000-participant store is the cohort's store tiled to 50,000 rows under new ids (with a matching cohort
table): memory depends on the array sizes, not on the ECGs' content. One training epoch runs in a child process
whose peak RSS is read from the kernel (``resource.getrusage(RUSAGE_CHILDREN)``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from aiecg.data.cohort import load_cohort
from aiecg.data.dataset import ECGDataset, TargetScaling, build_arrays
from aiecg.data.store import Store
from aiecg.data.targets import target_spec
from aiecg.ecg import MODEL_LEADS
from aiecg.models import create_model
from aiecg.train.loop import FitConfig, train_one_epoch
from aiecg.train.losses import LogCoshLoss

ROOT = Path(__file__).resolve().parents[1]


def pipeline_overhead(cohort_yaml: Path, epochs: int) -> dict:
    spec = target_spec("INDEXED_MASS")
    started = time.perf_counter()
    store = Store.open(cohort_yaml.parent / "store")
    frame = load_cohort(cohort_yaml, spec.outputs).frame
    ids = [i for i in frame["id"] if i in store.usable_ids]
    arrays = build_arrays(store, frame, ids, spec, MODEL_LEADS, None)
    dataset = ECGDataset(arrays, TargetScaling.fit(arrays.target))
    load_seconds = time.perf_counter() - started
    config = FitConfig(seed=0)

    def fresh():
        torch.manual_seed(0)
        model = create_model("fcn", 8, 400, 0, 1)
        return model, torch.optim.Adam(model.parameters(), lr=5e-4)

    model, optimizer = fresh()
    train_one_epoch(model, dataset, LogCoshLoss(), optimizer, config, 0, torch.device("cpu"))  # warm-up
    pipeline = []
    for epoch in range(1, epochs + 1):
        tic = time.perf_counter()
        train_one_epoch(model, dataset, LogCoshLoss(), optimizer, config, epoch, torch.device("cpu"))
        pipeline.append(time.perf_counter() - tic)

    model, optimizer = fresh()
    x, y = torch.randn(len(dataset), 8, 400), torch.randn(len(dataset), 1)
    meta, loss_fn = torch.zeros(len(dataset), 0), LogCoshLoss()
    raw = []
    for epoch in range(epochs + 1):
        tic = time.perf_counter()
        model.train()
        for index in torch.randperm(len(x)).split(32):
            optimizer.zero_grad()
            loss_fn(model(x[index], meta[index]), y[index]).backward()
            optimizer.step()
        if epoch:  # the first is a warm-up
            raw.append(time.perf_counter() - tic)
    return {
        "participants": len(dataset), "epochs_timed": epochs, "store_to_tensors_seconds": load_seconds,
        "pipeline_epoch_seconds": float(np.median(pipeline)), "in_memory_epoch_seconds": float(np.median(raw)),
        "overhead_fraction": float(np.median(pipeline) / np.median(raw) - 1),
    }


def tiled_store(cohort_yaml: Path, out: Path, n: int) -> Path:
    """A cohort + store of ``n`` participants made by tiling an existing one under new ids."""
    mapping = yaml.safe_load(cohort_yaml.read_text())
    table = pd.read_parquet(cohort_yaml.parent / mapping["table"])
    store = Store.open(cohort_yaml.parent / "store")
    reps = -(-n // len(table))
    big = pd.concat([table] * reps, ignore_index=True).iloc[:n].copy()
    old_ids = big[mapping["id_column"]].astype(str).to_numpy()
    big[mapping["id_column"]] = np.arange(2_000_001, 2_000_001 + n)
    big["ecg_file"] = ""
    out.mkdir(parents=True)
    big.to_parquet(out / "cohort.parquet")
    mapping["table"] = "cohort.parquet"
    (out / "cohort.yaml").write_text(yaml.safe_dump(mapping))
    rows = store.index.reset_index(drop=True).set_index("id").index.get_indexer(old_ids)
    index = store.index.iloc[rows].reset_index(drop=True)
    index["id"] = big[mapping["id_column"]].astype(str).to_numpy()
    index["beat_count"], index["beat_start"] = 0, 0
    (out / "store").mkdir()
    np.save(out / "store" / "median.npy", np.asarray(store.median)[rows])
    index.to_parquet(out / "store" / "index.parquet")
    manifest = dict(store.manifest, n_records=n)
    (out / "store" / "manifest.json").write_text(json.dumps(manifest))
    return out / "cohort.yaml"


def peak_memory(cohort_yaml: Path, work: Path) -> dict:
    code = (
        "from aiecg.config import RunConfig; from aiecg.workflows.train import train_run;"
        " from aiecg.train.loop import FitConfig;"
        f"train_run(RunConfig(cohort={str(cohort_yaml)!r}, name='mem', out={str(work)!r}, compare=False,"
        " fit=FitConfig(max_epochs=1)), progress=False)"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"participants": int(len(pd.read_parquet(cohort_yaml.parent / "cohort.parquet"))),
            "peak_rss_mb": peak_kb / 1024, "seconds_one_epoch_run": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", type=Path, default=ROOT / "data" / "synthetic" / "cohort.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-memory", type=int, default=50_000)
    args = parser.parse_args()
    results = {"overhead": pipeline_overhead(args.cohort, args.epochs), "torch_threads": torch.get_num_threads()}
    print(json.dumps(results, indent=2), flush=True)
    work = Path(tempfile.mkdtemp(prefix="aiecg-memory-"))
    try:
        results["memory"] = peak_memory(tiled_store(args.cohort, work / "cohort", args.n_memory), work / "runs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / "training_pipeline.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
