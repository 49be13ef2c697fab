"""An encoder trained elsewhere, wrapped by one adapter file (examples/encoder_adapter.py, docs/encoders.md): its
checkpoint becomes an encoder bundle whose blocks hold the checkpoint's weights, a run starts from it with the
adapter named in AIECG_MODELS, and without the adapter the bundle is refused with the variable to set.

Every aiecg call runs in a subprocess, so the adapter's model is never registered in the test session."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aiecg.bundle import load_bundle

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "examples" / "encoder_adapter.py"

MAKE_CHECKPOINT = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("published", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
torch.manual_seed(3)
network = module.PublishedCNN(8, 16)
for layer in network.modules():  # as a trained network's are: not the initial values
    if isinstance(layer, torch.nn.BatchNorm1d):
        layer.running_mean.uniform_(-0.1, 0.1)
torch.save(network.state_dict(), sys.argv[2])
"""


def _run(args: list[str], adapters: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AIECG_MODELS"}
    env |= {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    if adapters is not None:
        env["AIECG_MODELS"] = adapters
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)


def test_a_checkpoint_from_elsewhere_starts_a_run_through_one_adapter_file(synth_cohort, tmp_path):
    checkpoint, encoder = tmp_path / "published.pt", tmp_path / "encoder.aiecg"
    assert _run(["-c", MAKE_CHECKPOINT, str(ADAPTER), str(checkpoint)]).returncode == 0
    done = _run([str(ADAPTER), str(checkpoint), "--store", str(synth_cohort / "store"), "--out", str(encoder),
                 "--width", "16"])
    assert done.returncode == 0, done.stderr
    bundle = load_bundle(encoder, allow_encoder=True)  # reading needs no model; building it does
    assert bundle.is_encoder and bundle.model_name == "published_cnn" and bundle.input_kind == "median"
    published = torch.load(checkpoint, weights_only=True)
    for old, new in (("stem.", "blocks.0."), ("stage1.", "blocks.1."), ("stage2.", "blocks.2.")):
        for key, value in published.items():
            if key.startswith(old):
                assert torch.equal(bundle.state_dict[new + key[len(old):]], value), key
    assert not any(key.startswith("classifier") for key in bundle.state_dict)  # their head is left out

    train = ["-m", "aiecg.cli", "-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--arch",
             "published_cnn", "--model-kwargs", "width=16", "--init", str(encoder), "--epochs", "1", "--out",
             str(tmp_path / "runs"), "--name", "published", "--no-compare"]
    refused = _run(train)  # without the adapter aiecg does not know the model
    assert refused.returncode == 2 and "invalid choice: 'published_cnn'" in refused.stderr
    trained = _run(train, adapters=str(ADAPTER))
    assert trained.returncode == 0, trained.stderr
    model = tmp_path / "runs" / "published" / "model.aiecg"
    assert load_bundle(model).training["init"] == str(encoder)

    ecg = sorted((synth_cohort / "ecg").glob("*.xml"))[0]
    predict = ["-m", "aiecg.cli", "-q", "predict", "--bundle", str(model), str(ecg), "--out",
               str(tmp_path / "predictions.csv"), "--impute-missing-columns"]
    unknown = _run(predict)  # a bundle of an adapter's model names the variable that loads it
    assert unknown.returncode == 2 and "AIECG_MODELS=path/to/adapter.py" in unknown.stderr, unknown.stderr
    assert _run(predict, adapters=str(ADAPTER)).returncode == 0
    assert (tmp_path / "predictions.csv").exists()


def test_an_adapter_that_is_missing_or_fails_is_one_error_naming_it(tmp_path):
    missing = _run(["-m", "aiecg.cli", "train", "--help"], adapters=str(tmp_path / "nowhere.py"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"AIECG_MODELS: adapter file {tmp_path / 'nowhere.py'} does not exist" in missing.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('checkpoint layout unknown')\n")
    failed = _run(["-m", "aiecg.cli", "train", "--help"], adapters=str(broken))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert f"adapter {broken} failed to import (RuntimeError: checkpoint layout unknown)" in failed.stderr
