"""Model-only inference throughput, ECGs per second, PyTorch and ONNX Runtime side by side (the FCN at batch 256,
goal >= 2,800 ECGs/s on the 2-core development machine; ResNet34 beside it). Random weights: speed does not
depend on them. On a shared, loaded machine wall-clock rates understate what the cores do; the ECGs per
CPU-second (all threads of this process) are reported beside them (x cores = the unloaded ceiling).
Writes ``benchmarks/results/inference_speed.json``::

    .venv/bin/python benchmarks/inference_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aiecg.models import create_model
from aiecg.predict import OnnxModel, predict_raw
from aiecg.workflows.export import export_model

ROOT = Path(__file__).resolve().parents[1]


def throughput(model, ecg: np.ndarray, meta: np.ndarray, batch: int, repeats: int) -> dict[str, float]:
    predict_raw(model, ecg[:batch], meta[:batch], batch_size=batch)  # warm-up (allocations, kernel choice)
    rates, per_cpu_s = [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        predict_raw(model, ecg, meta, batch_size=batch)
        rates.append(len(ecg) / (time.perf_counter() - started))
        per_cpu_s.append(len(ecg) / (time.process_time() - cpu))
    return {"ecgs_per_s_best": max(rates), "ecgs_per_s_median": float(np.median(rates)),
            "ecgs_per_cpu_s_median": float(np.median(per_cpu_s))}


class Bfloat16:
    """The PyTorch model under CPU bfloat16 autocast (AVX512-BF16): a speed reference, not what predict runs."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    @torch.no_grad()
    def __call__(self, ecg: np.ndarray, meta: np.ndarray) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(torch.from_numpy(ecg), torch.from_numpy(meta)).float().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2048, help="ECGs per timed pass")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["fcn", "resnet34"])
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rng = np.random.default_rng(0)
    ecg = rng.normal(0, 0.5, (args.n, 8, 400)).astype(np.float32)
    meta = rng.uniform(0, 1, (args.n, 16)).astype(np.float32)
    flops = {"fcn": 2 * (128 * 8 * 8 * 400 + 256 * 128 * 5 * 200 + 128 * 256 * 3 * 100)}
    results: dict = {"n": args.n, "fcn_conv_flops_per_ecg": flops["fcn"],
                     "batch": args.batch, "input": [8, 400], "clinical_features": 16, "cores": cores,
                     "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "loadavg_before": os.getloadavg(), "models": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            torch.manual_seed(0)
            model = create_model(name, 8, 400, 16, 1).eval()
            onnx_path = export_model(model, 8, 400, 16, Path(scratch) / f"{name}.onnx")
            entry = {}
            for threads in sorted({1, cores}):
                torch.set_num_threads(threads)
                entry[f"torch_threads{threads}"] = throughput(model, ecg, meta, args.batch, args.repeats)
                onnx = OnnxModel(onnx_path, threads=threads)
                entry[f"onnxruntime_threads{threads}"] = throughput(onnx, ecg, meta, args.batch, args.repeats)
                entry[f"torch_bfloat16_threads{threads}"] = throughput(Bfloat16(model), ecg, meta, args.batch,
                                                                       args.repeats)
            results["models"][name] = entry
            print(name, json.dumps(entry, indent=1))
    results["loadavg_after"] = os.getloadavg()
    out = ROOT / "benchmarks" / "results" / "inference_speed.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
