"""End-to-end ``aiecg predict`` throughput on CardioSoft XML files (UK Biobank field 20205), files per second per
core (goal >= 100), with where the time goes per file: reading, the input-contract check (a second read), and
prepare's per-record path. An ECG-only FCN bundle with random weights (speed does not depend on them). Writes
``benchmarks/results/predict_speed.json``::

    .venv/bin/python benchmarks/predict_speed.py --n 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from aiecg.bundle import Bundle, save_bundle
from aiecg.data.dataset import TargetScaling
from aiecg.data.prepare import PrepareConfig, process_record
from aiecg.data.targets import target_spec
from aiecg.ecg import MODEL_LEADS
from aiecg.io import read_ecg
from aiecg.models import create_model
from aiecg.synth import SynthConfig, generate_cohort
from aiecg.workflows.predict import predict_files

ROOT = Path(__file__).resolve().parents[1]


def make_bundle(path: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("fcn", len(MODEL_LEADS), 400, 0, 1).eval()
    config = PrepareConfig(store_beats=False)
    return save_bundle(Bundle(
        model_name="fcn", model_kwargs={}, n_leads=len(MODEL_LEADS), n_samples=400, n_meta=0, n_outputs=1,
        target=target_spec("INDEXED_MASS"), state_dict=model.state_dict(), scaling=TargetScaling((50.0,), (10.0,)),
        input_spec={"leads": list(MODEL_LEADS), "fs": 500.0, "window": 400, "r_offset": 150,
                    "preprocessing": config.to_dict()}), path)


def per_file_ms(files: list[Path]) -> dict[str, float]:
    config = PrepareConfig(store_beats=False)
    started = time.perf_counter()
    for path in files:
        read_ecg(path)
    read = (time.perf_counter() - started) / len(files)
    started = time.perf_counter()
    for path in files:
        process_record(path.stem, str(path), None, config)
    process = (time.perf_counter() - started) / len(files)
    return {"read_ecg_ms": 1000 * read, "process_record_ms": 1000 * process}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-predict-bench-"))
    results: dict = {"n": args.n, "cores": len(os.sched_getaffinity(0)), "loadavg_before": os.getloadavg()}
    try:
        generate_cohort(work / "data", SynthConfig(n=args.n, seed=0, workers=args.workers), progress=False)
        files = sorted((work / "data" / "ecg").glob("*.xml"))
        bundle = make_bundle(work / "model.aiecg")
        process_record("warm-up", str(files[0]), None, PrepareConfig())  # imports once, as each worker does
        results["per_file"] = per_file_ms(files[:100])
        torch.set_num_threads(1)  # one core for everything: files/s/core
        for engine in ("torch", "onnx"):
            started = time.perf_counter()
            table = predict_files(bundle, [work / "data" / "ecg"], workers=1, engine=engine)
            seconds = time.perf_counter() - started
            results[f"workers1_{engine}"] = {"seconds": seconds, "files_per_s_per_core": len(table) / seconds,
                                             "status_counts": table["status"].value_counts().to_dict()}
        torch.set_num_threads(args.workers)
        started = time.perf_counter()
        table = predict_files(bundle, [work / "data" / "ecg"], workers=args.workers)
        seconds = time.perf_counter() - started
        results[f"workers{args.workers}_torch"] = {"seconds": seconds, "files_per_s": len(table) / seconds,
                                                   "files_per_s_per_core": len(table) / seconds / args.workers}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()
    out = ROOT / "benchmarks" / "results" / "predict_speed.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
