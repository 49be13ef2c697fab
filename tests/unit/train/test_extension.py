"""Adding a loss or an augmentation is one file: a module with one registered class, picked up by name."""

import importlib.util
import textwrap

import pytest
import torch

from aiecg.config import AugmentConfig, RunConfig
from aiecg.data import augment
from aiecg.data.targets import target_spec
from aiecg.errors import ConfigError
from aiecg.train import losses

LOSS_FILE = '''
import torch
from aiecg.train.losses import REGRESSION, Loss, register_loss

@register_loss("squared_log")
class SquaredLogError(Loss):
    """Mean squared error of log(1 + |y|), signed."""
    kinds = (REGRESSION,)

    def forward(self, output, target):
        f = lambda v: torch.sign(v) * torch.log1p(v.abs())
        return ((f(output) - f(target)) ** 2).mean()
'''

AUGMENT_FILE = '''
from dataclasses import dataclass
from aiecg.data.augment import Transform, register_transform

@register_transform("invert")
@dataclass
class Invert(Transform):
    """Flip the sign of the ECG (a lead-reversal stand-in)."""
    gain: float = 1.0

    def apply(self, x, y, generator):
        return -self.gain * x, y
'''


def _import(tmp_path, name, source):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    monkeypatch.setattr(losses, "LOSSES", dict(losses.LOSSES))
    monkeypatch.setattr(augment, "TRANSFORMS", dict(augment.TRANSFORMS))
    return _import(tmp_path, "my_loss", LOSS_FILE), _import(tmp_path, "my_augmentation", AUGMENT_FILE)


def test_a_loss_in_one_file_is_chosen_by_name_and_checked_against_the_target(plugins):
    assert "squared_log" in losses.list_losses()
    loss = losses.make_loss(RunConfig(criterion="squared_log").criterion, target_spec("INDEXED_MASS"))
    value = loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[1.0], [0.0]]))
    assert value.item() == pytest.approx(torch.log1p(torch.tensor(3.0)).item() ** 2 / 2)
    with pytest.raises(ValueError, match="squared_log is a regression loss; target LVH is binary"):
        losses.make_loss("squared_log", target_spec("LVH"))


def test_an_augmentation_in_one_file_is_turned_on_by_the_run_configuration(plugins):
    config = RunConfig.from_dict({"fit": {"augment": {"transforms": {"invert": {"probability": 1.0, "gain": 2.0}}}}})
    chosen = config.fit.augment
    assert list(chosen.transforms)[-1] == "invert" and chosen.transforms["noise"] == {}  # defaults kept
    off = AugmentConfig({**{name: {"probability": 0} for name in ("crop_resize", "amplitude", "noise", "shift")},
                         "invert": {"probability": 1.0, "gain": 2.0}})
    x = torch.randn(3, 2, 50)
    torch.testing.assert_close(augment.augment_batch(x, off, torch.Generator().manual_seed(0)), -2 * x)
    with pytest.raises(ConfigError, match=r"augment.transforms.invert: unknown options \['scale'\]"):
        augment.build_augmentation(AugmentConfig({"invert": {"scale": 1}}))
    with pytest.raises(ConfigError, match="unknown augmentation 'flip'; registered: crop_resize, .*invert"):
        augment.build_augmentation(AugmentConfig({"flip": {}}))
