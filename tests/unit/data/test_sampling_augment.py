import dataclasses

import numpy as np
import pytest
import torch

from aiecg.config import AugmentConfig
from aiecg.data.augment import (
    Compose,
    Mixup,
    Transform,
    amplitude_scale,
    augment_batch,
    build_augmentation,
    displace_chest_electrodes,
    for_input_leads,
    random_crop_resize,
    time_shift,
)
from aiecg.data.sampling import epoch_indices
from aiecg.errors import ConfigError


def test_oversample_and_undersample_balance_classes_reproducibly():
    labels = np.array([0] * 90 + [1] * 10)
    over = epoch_indices(100, labels, "oversample", seed=1, epoch=3)
    assert len(over) == 180 and np.bincount(labels[over]).tolist() == [90, 90]
    assert set(over[labels[over] == 0]) == set(range(90))  # every majority row still once
    under = epoch_indices(100, labels, "undersample", seed=1, epoch=3)
    assert np.bincount(labels[under]).tolist() == [10, 10] and len(set(under)) == 20
    np.testing.assert_array_equal(under, epoch_indices(100, labels, "undersample", seed=1, epoch=3))
    assert not np.array_equal(under, epoch_indices(100, labels, "undersample", seed=1, epoch=4))
    plain = epoch_indices(100, None, "none", seed=1, epoch=0)
    assert sorted(plain) == list(range(100))
    with pytest.raises(ValueError):
        epoch_indices(100, labels, "smote", 0, 0)


def test_augmentations_are_seeded_and_do_what_they_say():
    x = torch.randn(6, 8, 400)
    always = AugmentConfig({name: {"probability": 1.0} for name in ("crop_resize", "amplitude", "noise", "shift")})
    a = augment_batch(x, always, torch.Generator().manual_seed(0))
    b = augment_batch(x, always, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x) and a.shape == x.shape
    scaled = amplitude_scale(x, torch.Generator().manual_seed(1), 2.0, 2.0)
    torch.testing.assert_close(scaled, 2 * x)
    ramp = torch.arange(400.0).repeat(1, 1, 1)
    shifted = time_shift(ramp, torch.Generator().manual_seed(2), max_shift=5)
    shift = float(ramp[0, 0, 200] - shifted[0, 0, 200])
    assert abs(shift) <= 5 and torch.equal(shifted[0, 0, 50:350], ramp[0, 0, 50:350] - shift)
    same = random_crop_resize(ramp, torch.Generator().manual_seed(3), min_fraction=1.0)
    torch.testing.assert_close(same, ramp)


def test_chest_electrode_displacement_interpolates_neighbouring_leads_and_leaves_the_limb_leads():
    x = torch.randn(3, 8, 50)  # I, II, V1..V6
    chest = list(range(2, 8))
    moved = displace_chest_electrodes(x, chest, torch.tensor([1.0, -0.5, 0.0]), torch.zeros(3, 6))
    torch.testing.assert_close(moved[:, :2], x[:, :2])
    torch.testing.assert_close(moved[0, 2:7], x[0, 3:8])  # one spacing lateral: V1 reads V2's site, ...
    torch.testing.assert_close(moved[0, 7], 2 * x[0, 7] - x[0, 6])  # ... and V6 one spacing beyond V6
    torch.testing.assert_close(moved[1, 3:8], 0.5 * x[1, 3:8] + 0.5 * x[1, 2:7])  # half a spacing medial
    torch.testing.assert_close(moved[1, 2], 0.5 * x[1, 2] + 0.5 * (2 * x[1, 2] - x[1, 3]))
    torch.testing.assert_close(moved[2], x[2])
    gains = torch.log(torch.tensor([[2.0, 1, 1, 1, 1, 0.5]]))
    scaled = displace_chest_electrodes(x[:1], chest, torch.zeros(1), gains)
    torch.testing.assert_close(scaled[0, 2], 2 * x[0, 2])
    torch.testing.assert_close(scaled[0, 7], 0.5 * x[0, 7])
    torch.testing.assert_close(scaled[0, :7][[0, 1, 3, 4, 5, 6]], x[0, :7][[0, 1, 3, 4, 5, 6]])


def test_the_electrode_transform_is_off_by_default_seeded_and_refuses_an_input_of_other_leads():
    x = torch.randn(5, 8, 40)
    off = {name: {"probability": 0} for name in ("crop_resize", "amplitude", "noise", "shift")}
    assert torch.equal(augment_batch(x, AugmentConfig(off), torch.Generator().manual_seed(0)), x)
    on = AugmentConfig({**off, "electrode": {"probability": 1.0}})
    a = augment_batch(x, on, torch.Generator().manual_seed(4))
    assert torch.equal(a, augment_batch(x, on, torch.Generator().manual_seed(4))) and not torch.equal(a, x)
    torch.testing.assert_close(a[:, :2], x[:, :2])
    with pytest.raises(ConfigError, match="12 leads.*'leads' option"):
        augment_batch(torch.randn(2, 12, 40), on, torch.Generator().manual_seed(0))
    twelve = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    told = AugmentConfig({**off, "electrode": {"probability": 1.0, "leads": twelve}})
    b = augment_batch(torch.randn(2, 12, 40), told, torch.Generator().manual_seed(0))
    assert b.shape == (2, 12, 40)
    # a run gives the transform its input's leads, unless the configuration names them
    assert for_input_leads(on, twelve).transforms["electrode"]["leads"] == twelve
    assert for_input_leads(told, ["I", "II"]).transforms["electrode"]["leads"] == twelve
    assert for_input_leads(AugmentConfig(), twelve).transforms["electrode"]["leads"] == twelve
    with pytest.raises(ConfigError, match=r"lack \['V1'"):  # refused when the augmentation is built
        build_augmentation(for_input_leads(on, ["I", "II", "V2", "V3", "V4", "V5", "V6"]))
    build_augmentation(for_input_leads(AugmentConfig(off), ["I", "II"]))  # off: no chest leads needed


def test_mixup_changes_the_label_with_the_signal_and_is_seeded():
    x = torch.arange(8.0).view(8, 1, 1).repeat(1, 2, 10)
    y = 10 * torch.arange(8.0).view(8, 1)
    off = {name: {"probability": 0} for name in ("crop_resize", "amplitude", "noise", "shift")}
    config = AugmentConfig({**off, "mixup": {"probability": 1.0, "alpha": 0.4}})
    mx, my = augment_batch(x, config, torch.Generator().manual_seed(5), y)
    mx2, my2 = augment_batch(x, config, torch.Generator().manual_seed(5), y)
    assert torch.equal(mx, mx2) and torch.equal(my, my2)
    # each mixed sample is a convex combination; its label uses the same weight as its signal
    torch.testing.assert_close(my[:, 0], 10 * mx[:, 0, 0])
    assert not torch.equal(my, y)


def test_a_new_transform_is_one_class_with_its_own_probability():
    @dataclasses.dataclass
    class Invert(Transform):
        def apply(self, x, y, generator):
            return -x, y

    x, y = torch.ones(1000, 1, 4), torch.zeros(1000, 1)
    out, same_y = Compose([Invert(probability=0.3), Mixup(probability=0.0)])(x, y, torch.Generator().manual_seed(0))
    share = float((out[:, 0, 0] < 0).float().mean())
    assert 0.25 < share < 0.35 and torch.equal(same_y, y)
