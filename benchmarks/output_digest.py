"""Byte-level fingerprint of what the signal path produces, to check that a speed change alters no output.

On a fixed input set (a synthetic cohort generated once into ``--inputs`` and then only read, the LUDB records and
the vendor example files under ``../shared/data``) it runs ``prepare_store`` (every file of the store),
``run_measure`` with the per-beat and per-lead tables, and ``predict_files`` with a fixed random-weight bundle, and
writes the SHA-256 of every output file. ``--check`` compares with a saved fingerprint and exits 1 naming each
file that differs::

    .venv/bin/python benchmarks/output_digest.py --inputs DIR --save digest.json   # before the change
    .venv/bin/python benchmarks/output_digest.py --inputs DIR --check digest.json  # after it

The inputs folder stays outside the repository (the synthetic files are generated there on the first run and
reused, so a change to the generator does not change the inputs of the check).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from aiecg.bundle import Bundle, save_bundle
from aiecg.data.dataset import TargetScaling
from aiecg.data.prepare import PrepareConfig, prepare_store
from aiecg.data.targets import target_spec
from aiecg.ecg import MODEL_LEADS
from aiecg.models import create_model
from aiecg.synth import SynthConfig, generate_cohort
from aiecg.workflows.measure import run_measure
from aiecg.workflows.predict import predict_files

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bundle(path: Path) -> Bundle:
    torch.manual_seed(0)
    model = create_model("fcn", len(MODEL_LEADS), 400, 0, 1).eval()
    save_bundle(Bundle(
        model_name="fcn", model_kwargs={}, n_leads=len(MODEL_LEADS), n_samples=400, n_meta=0, n_outputs=1,
        target=target_spec("INDEXED_MASS"), state_dict=model.state_dict(), scaling=TargetScaling((50.0,), (10.0,)),
        input_spec={"leads": list(MODEL_LEADS), "fs": 500.0, "window": 400, "r_offset": 150,
                    "preprocessing": PrepareConfig(store_beats=False).to_dict()}), path)
    return path


def fingerprint(inputs: Path, n: int) -> dict[str, str]:
    cohort = inputs / "synth" / "cohort.yaml"
    if not cohort.exists():
        generate_cohort(inputs / "synth", SynthConfig(n=n, seed=11, workers=1), progress=False)
    work = Path(tempfile.mkdtemp(prefix="aiecg-digest-"))
    digest: dict[str, str] = {}
    try:
        store = work / "store"
        prepare_store(cohort, store, PrepareConfig(), workers=1, progress=False)
        for path in sorted(p for p in store.rglob("*") if p.is_file() and p.name != "manifest.json"):
            digest[f"store/{path.relative_to(store)}"] = _sha(path)
        real = [SHARED / "ludb" / "data", SHARED / "formats", SHARED / "ptbxl" / "records500", SHARED / "cinc2021"]
        for name, sources in (("measure_synth", [inputs / "synth" / "ecg"]), ("measure_real", real)):
            run_measure(sources, work / name, with_beats=True, with_leads=True)
            for path in sorted((work / name).glob("*.csv")):
                digest[f"{name}/{path.name}"] = _sha(path)
        bundle = _bundle(work / "model.aiecg")
        torch.set_num_threads(1)
        for name, sources in (("predict_synth", [inputs / "synth" / "ecg"]), ("predict_real", real)):
            table = predict_files(bundle, sources, workers=1)
            table.to_csv(work / f"{name}.csv", index=False)
            digest[f"{name}.csv"] = _sha(work / f"{name}.csv")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=Path, required=True, help="folder for the fixed synthetic inputs")
    parser.add_argument("--n", type=int, default=150, help="synthetic records (used when first generated)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="write the fingerprint here")
    action.add_argument("--check", type=Path, help="compare with this saved fingerprint")
    args = parser.parse_args()
    digest = fingerprint(args.inputs, args.n)
    if args.save:
        args.save.write_text(json.dumps(digest, indent=1))
        print(f"{len(digest)} outputs fingerprinted")
        return
    saved = json.loads(args.check.read_text())
    differ = sorted(k for k in saved.keys() | digest.keys() if saved.get(k) != digest.get(k))
    for key in differ:
        print(f"differs: {key}")
    print(f"{len(digest) - len(differ)} of {len(saved.keys() | digest.keys())} outputs byte-identical")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
