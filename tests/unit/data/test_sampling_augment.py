import numpy as np
import pytest
import torch

from aiecg.data.augment import AugmentConfig, amplitude_scale, augment_batch, random_crop_resize, time_shift
from aiecg.data.sampling import epoch_indices


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
    a = augment_batch(x, AugmentConfig(p=1.0), torch.Generator().manual_seed(0))
    b = augment_batch(x, AugmentConfig(p=1.0), torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x) and a.shape == x.shape
    scaled = amplitude_scale(x, torch.Generator().manual_seed(1), 2.0, 2.0)
    torch.testing.assert_close(scaled, 2 * x)
    ramp = torch.arange(400.0).repeat(1, 1, 1)
    shifted = time_shift(ramp, torch.Generator().manual_seed(2), max_shift=5)
    shift = float(ramp[0, 0, 200] - shifted[0, 0, 200])
    assert abs(shift) <= 5 and torch.equal(shifted[0, 0, 50:350], ramp[0, 0, 50:350] - shift)
    same = random_crop_resize(ramp, torch.Generator().manual_seed(3), min_fraction=1.0)
    torch.testing.assert_close(same, ramp)
