"""The package's surface: the top-level Python API, ``python -m aiecg``, and configs that load without torch."""

import subprocess
import sys

import pytest

import aiecg
from aiecg.config import RunConfig
from aiecg.errors import ConfigError


def test_the_top_level_api_exports_what_a_user_needs():
    from aiecg.bundle import load_bundle
    from aiecg.io import read_ecg

    assert aiecg.read_ecg is read_ecg and aiecg.load_bundle is load_bundle
    from aiecg.predict import predict

    assert aiecg.predict_arrays is predict
    for name in ("create_model", "load_cohort", "predict_files", "list_models", "RunConfig", "train_run"):
        assert callable(getattr(aiecg, name)), name
    with pytest.raises(AttributeError):
        aiecg.no_such_thing  # noqa: B018


def test_loading_a_config_imports_no_torch_and_python_m_aiecg_runs(tmp_path):
    path = tmp_path / "run.yaml"
    RunConfig(cohort="c.yaml", fit=RunConfig().fit).save(path)
    # one fresh interpreter for both: it loads the config, then runs the package as ``python -m aiecg --help`` does
    code = ("import runpy, sys; from aiecg.config import RunConfig; c = RunConfig.load(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(c.fit.lr, flush=True); "
            "sys.argv = ['aiecg', '--help']; runpy.run_module('aiecg', run_name='__main__', alter_sys=True)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    config_line, help_text = out.stdout.split("\n", 1)
    assert config_line == "0.0005"
    assert "train" in help_text and "prepare" in help_text


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"run config\.fit: unknown keys \['lr_typo'\]"):
        RunConfig.from_dict({"fit": {"lr_typo": 1}})
    with pytest.raises(ConfigError, match=r"split_seed: expected a number"):
        RunConfig.from_dict({"split_seed": "abc"})
    config = RunConfig.from_dict({"leads": ["I", "II"], "fit": {"augment": {"noise_mv": 0.02}}})
    assert config.leads == ("I", "II") and config.fit.augment.transforms["noise"] == {"sd_mv": 0.02}  # former layout
