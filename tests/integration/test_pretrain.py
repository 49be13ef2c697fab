"""Pre-training end to end on a tiny synthetic cohort: pretrain -> resume -> train --init (full and frozen) ->
predict, and the refusals (an encoder cannot predict; an encoder of other leads cannot start a run)."""

import json

import pytest
import torch
import yaml

from aiecg.bundle import load_bundle
from aiecg.cli import main
from aiecg.errors import BundleError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, synth_cohort):
    """The session's synthetic cohort (read-only, tests/conftest.py) and an encoder pre-trained on its store."""
    root = tmp_path_factory.mktemp("pretrain")
    (root / "data").symlink_to(synth_cohort, target_is_directory=True)  # read through; outputs go under root
    args = ["-q", "pretrain", "--stores", str(synth_cohort / "store"), "--out", str(root / "pre"), "--lr", "0.003",
            "--batch-size", "16", "--seed", "1"]
    assert main([*args, "--epochs", "2"]) == 0
    assert main([*args, "--epochs", "6", "--resume"]) == 0  # continues from epoch 2: as if killed there
    return root


def test_pretraining_writes_an_encoder_that_beats_the_zero_reconstruction(pretrained):
    run = pretrained / "pre"
    summary = json.loads((run / "pretrain.json").read_text())
    assert (run / "epochs.csv").read_text().count("\n") == 7  # header + 6 epochs: 2, then 4 more after resuming
    assert summary["n_train"] + summary["n_val"] == summary["stores"][0]["used"] >= 50
    assert summary["best_val_loss"] < summary["zero_reconstruction_val_loss"]
    assert 0 < summary["explained_hidden_energy"] <= 1
    encoder = load_bundle(run / "encoder.aiecg", allow_encoder=True)
    assert encoder.is_encoder and encoder.input_spec["fs"] == 500 and len(encoder.leads) == 8
    assert yaml.safe_load((run / "config.yaml").read_text())["fit"]["threads"] >= 1
    with pytest.raises(BundleError, match="pre-trained encoder"):
        load_bundle(run / "encoder.aiecg")  # what predict, evaluate and explain call


def test_a_run_started_from_the_encoder_records_it_and_a_frozen_encoder_is_unchanged(pretrained, monkeypatch):
    from aiecg.workflows import train

    cohort, encoder_path = pretrained / "data" / "cohort.yaml", pretrained / "pre" / "encoder.aiecg"
    base = ["-q", "train", "--cohort", str(cohort), "--epochs", "2", "--no-compare", "--out", str(pretrained / "runs")]
    reads = []
    monkeypatch.setattr(train, "load_bundle", lambda path, **kw: reads.append(path) or load_bundle(path, **kw))
    assert main([*base, "--name", "init", "--init", str(encoder_path)]) == 0
    assert reads == [str(encoder_path)]  # the encoder is read once per run
    monkeypatch.undo()
    assert main([*base, "--name", "probe", "--init", str(encoder_path), "--freeze-encoder"]) == 0
    encoder = load_bundle(encoder_path, allow_encoder=True).state_dict
    for name, frozen in (("init", False), ("probe", True)):
        bundle = load_bundle(pretrained / "runs" / name / "model.aiecg")
        assert bundle.training["init"] == str(encoder_path) and len(bundle.training["init_sha256"]) == 64
        assert bundle.training["freeze_encoder"] is frozen
        same = all(torch.equal(bundle.state_dict[k], v) for k, v in encoder.items() if k.startswith("blocks."))
        assert same is frozen, name  # fine-tuning moves the blocks; a linear probe keeps them, batch norm included
    out = pretrained / "pred.csv"
    ecgs = sorted((pretrained / "data" / "ecg").glob("*.xml"))[:3]
    assert main(["-q", "predict", "--bundle", str(pretrained / "runs" / "probe" / "model.aiecg"),
                 *map(str, ecgs), "--out", str(out), "--clinical", str(pretrained / "data" / "cohort.csv"),
                 "--id-column", "eid"]) == 0
    assert out.read_text().count("\n") == 4


def test_staged_unfreezing_from_the_encoder_opens_one_block_per_stage(pretrained, capsys):
    import pandas as pd

    cohort, encoder_path = pretrained / "data" / "cohort.yaml", pretrained / "pre" / "encoder.aiecg"
    base = ["-q", "train", "--cohort", str(cohort), "--epochs", "2", "--no-compare", "--out", str(pretrained / "runs"),
            "--init", str(encoder_path), "--staged-unfreezing"]
    assert main([*base, "--name", "staged"]) == 0
    run = pretrained / "runs" / "staged"
    bundle = load_bundle(run / "model.aiecg")
    assert bundle.training["staged_unfreezing"] is True and bundle.training["init"] == str(encoder_path)
    stages = sorted(p.parent.name for p in run.glob("stage*/epochs.csv"))
    assert stages == ["stage0", "stage1", "stage2", "stage3"]  # the head, then the FCN's 3 blocks from the output
    epochs = sum(len(pd.read_csv(run / stage / "epochs.csv")) for stage in stages)
    assert bundle.training["epochs_run"] == epochs and 1 <= bundle.training["best_epoch"] <= epochs
    encoder = load_bundle(encoder_path, allow_encoder=True).state_dict
    moved = {k.split(".")[1] for k, v in encoder.items() if k.startswith("blocks.") and k.endswith("weight")
             and not torch.equal(bundle.state_dict[k], v)}
    assert moved == {"0", "1", "2"}  # every block was opened in the end
    for flags, message in ((["--freeze-encoder"], "choose one"), (["--resume"], "cannot resume")):
        assert main([*base, "--name", "refused", *flags]) == 2
        assert message in capsys.readouterr().err
    assert not (pretrained / "runs" / "refused").exists()


def test_a_search_from_the_encoder_reads_it_once_and_does_not_stage(pretrained, monkeypatch, capsys):
    from aiecg.workflows import train

    cohort, encoder_path = pretrained / "data" / "cohort.yaml", pretrained / "pre" / "encoder.aiecg"
    space = pretrained / "space.yaml"  # settings that keep the encoder's architecture
    space.write_text("lr: {choices: [0.0001, 0.001]}\nhead_dropout: {low: 0.0, high: 0.6, step: 0.2}\n")
    base = ["-q", "tune", "--cohort", str(cohort), "--init", str(encoder_path), "--search-only", "--trials", "2",
            "--epochs", "1", "--out", str(pretrained / "tune"), "--space", str(space)]
    reads = []
    monkeypatch.setattr(train, "load_bundle", lambda path, **kw: reads.append(path) or load_bundle(path, **kw))
    assert main(base) == 0
    assert reads == [str(encoder_path)]  # once for the search, not once per trial and per corner of the space
    assert main([*base, "--staged-unfreezing"]) == 2
    assert "--staged-unfreezing is not searched" in capsys.readouterr().err
    arch_space = pretrained / "arch.yaml"
    arch_space.write_text("arch: {choices: [fcn, fcn_zhou2024]}\n")
    assert main([*base[:-4], "--out", str(pretrained / "tune_arch"), "--space", str(arch_space)]) == 2
    assert "arch = 'fcn_zhou2024' cannot be trained (--init" in capsys.readouterr().err
    # without --space, the search from an encoder leaves out what would change its architecture
    assert main([*base[:-4], "--trials", "1", "--out", str(pretrained / "tune_default")]) == 0
    searched = yaml.safe_load((pretrained / "tune_default" / "tune.yaml").read_text())["space"]
    assert {"lr", "batch_size", "head_dropout"} <= set(searched)
    assert not {"arch", "batch_norm", "max_pool"} & set(searched)


def test_an_encoder_of_other_leads_or_no_encoder_is_refused_before_training(pretrained, capsys):
    cohort, encoder_path = pretrained / "data" / "cohort.yaml", pretrained / "pre" / "encoder.aiecg"
    base = ["-q", "train", "--cohort", str(cohort), "--epochs", "1", "--out", str(pretrained / "runs")]
    assert main([*base, "--name", "leads", "--init", str(encoder_path), "--leads", "I,II,V1,V2,V3,V4,V5,V6,III"]) == 2
    assert "--init" in capsys.readouterr().err
    assert not (pretrained / "runs" / "leads" / "epochs.csv").exists()
    assert main([*base, "--name", "nothing", "--freeze-encoder"]) == 2
    assert "--freeze-encoder needs --init" in capsys.readouterr().err
    assert main([*base, "--name", "nothing", "--staged-unfreezing"]) == 2
    assert "--staged-unfreezing needs --init" in capsys.readouterr().err


def test_paced_records_are_left_out_unless_asked(synth_cohort, tmp_path):
    import shutil

    import pandas as pd

    store = tmp_path / "store"
    shutil.copytree(synth_cohort / "store", store)
    index = pd.read_parquet(store / "index.parquet")
    index["paced"] = index["paced"].astype(object) if "paced" in index else ""
    index.loc[index.index[index["status"] == "ok"][0], "paced"] = "ventricular"
    index.to_parquet(store / "index.parquet")
    for flag, left_out in (([], 1), (["--include-paced"], 0)):
        out = tmp_path / f"pre{left_out}"
        assert main(["-q", "pretrain", "--stores", str(store), "--out", str(out), "--epochs", "1", *flag]) == 0
        row = json.loads((out / "pretrain.json").read_text())["stores"][0]
        assert row["paced_left_out"] == left_out and row["used"] == row["usable"] - left_out


def test_an_encoder_of_a_model_for_other_inputs_is_refused_before_anything(tmp_path):
    """pretrain reads one input: 'dual' would split the median beat in halves, and an encoder of both inputs is
    two encoders, so both are refused at once."""
    from aiecg.config import PretrainConfig
    from aiecg.errors import ConfigError
    from aiecg.workflows.pretrain import pretrain_run

    def config(**kw):
        return PretrainConfig(stores=(str(tmp_path / "store"),), out=str(tmp_path / "pre"), **kw)

    with pytest.raises(ConfigError, match=r"pre-training with --input median: model 'dual' reads both input"):
        pretrain_run(config(arch="dual"))
    with pytest.raises(ConfigError, match=r"--input 'both': pre-training reads one input.*pre-train them apart"):
        pretrain_run(config(arch="dual", input="both"))
    assert not any(tmp_path.iterdir())


def test_pretraining_on_strips_needs_a_store_with_strips(synth_cohort, tmp_path):
    from aiecg.config import PretrainConfig
    from aiecg.errors import ConfigError
    from aiecg.workflows.pretrain import pretrain_run

    with pytest.raises(ConfigError, match=r"holds no rhythm strips .*`aiecg prepare --cohort COHORT.yaml --strips"):
        pretrain_run(PretrainConfig(stores=(str(synth_cohort / "store"),), out=str(tmp_path / "pre"),
                                    arch="inception1d", input="rhythm"))
    assert not (tmp_path / "pre").exists()
