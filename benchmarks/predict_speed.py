"""End-to-end ``aiecg predict`` throughput on CardioSoft XML files (UK Biobank field 20205), files per second per
core (goal >= 100), measured as files per CPU-second (this process and its pool workers), with where the
time goes per file: reading (done twice: the input-contract check, then prepare's per-record path) and prepare's
per-record path. An ECG-only FCN bundle with random weights (speed does not depend on them). Writes
``benchmarks/results/predict_speed.json``::

    .venv/bin/python benchmarks/predict_speed.py --n 300
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch

from aiecg.bundle import Bundle, save_bundle
from aiecg.data.dataset import TargetScaling
from aiecg.data.prepare import PrepareConfig, prepare_record
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


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers): a per-core measure that a shared,
    loaded machine does not distort the way wall time is distorted."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def per_file_ms(files: list[Path]) -> dict[str, float]:
    config = PrepareConfig(store_beats=False)
    _, _, read = timed(lambda: [read_ecg(path) for path in files])
    _, _, process = timed(lambda: [prepare_record(path.stem, str(path), None, config) for path in files])
    return {"read_ecg_cpu_ms": 1000 * read / len(files), "process_record_cpu_ms": 1000 * process / len(files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict_speed.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-predict-bench-"))
    results: dict = {"n": args.n, "cores": len(os.sched_getaffinity(0)), "loadavg_before": os.getloadavg()}
    try:
        generate_cohort(work / "data", SynthConfig(n=args.n, seed=0, workers=args.workers), progress=False)
        files = sorted((work / "data" / "ecg").glob("*.xml"))
        bundle = make_bundle(work / "model.aiecg")
        prepare_record("warm-up", str(files[0]), None, PrepareConfig())  # imports once, as each worker does
        results["per_file"] = per_file_ms(files[:100])
        torch.set_num_threads(1)  # one core for everything: files/s/core
        from aiecg.workflows.export import export_bundle

        onnx_path = export_bundle(bundle, work / "model.onnx")["onnx"]  # once, as `aiecg export` does: not timed
        for engine, workers in (("torch", 1), ("onnx", 1), ("torch", args.workers)):
            torch.set_num_threads(workers)  # workers=1: one core for everything
            table, wall, cpu = timed(predict_files, bundle, [work / "data" / "ecg"], workers=workers, engine=engine,
                                     onnx_path=onnx_path if engine == "onnx" else None)
            results[f"workers{workers}_{engine}"] = {
                "wall_s": wall, "cpu_s": cpu, "files_per_s_wall": len(table) / wall,
                "files_per_s_per_core": len(table) / cpu,
                "status_counts": table["status"].value_counts().to_dict()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
