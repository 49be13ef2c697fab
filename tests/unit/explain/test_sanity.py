"""The model-randomisation check (Adebayo et al. 2018): what it compares, and that it tells a map of the model from a
map of the input."""

import numpy as np
import pytest
import torch
from scipy import stats

from aiecg.explain.attributions import fcn_cam, integrated_gradients, upsample
from aiecg.explain.sanity import _correlations, _summary, cascade, randomisation_check, stage_label
from aiecg.models import create_model

pytest.importorskip("captum")


def tiny_fcn(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("fcn", 4, 64, 2, 1, filters=(6, 8, 6), kernels=(5, 3, 3)).eval()


def test_correlations_are_spearman_per_participant_over_leads_and_time():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4, 10)), rng.normal(size=(3, 4, 10))
    b[1] = a[1] ** 3  # monotone: rank correlation 1
    got = _correlations(a, b)
    for i in range(3):
        assert got[i] == pytest.approx(stats.spearmanr(a[i].ravel(), b[i].ravel()).statistic)
    assert got[1] == pytest.approx(1.0)


def test_a_map_passes_only_when_the_fully_randomised_model_decorrelates_it():
    early_high = [np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.25, 0.0])]
    check = _summary(early_high, 0.3)
    assert check.median == [pytest.approx(0.8), pytest.approx(0.15)] and check.passes
    assert check.q1[1] == pytest.approx(0.075) and check.q3[1] == pytest.approx(0.2125)
    assert not _summary([np.array([0.2]), np.array([0.35])], 0.3).passes
    assert not _summary([np.array([0.2]), np.array([-0.5])], 0.3).passes  # an inverted map still copies


def test_the_cascade_runs_from_the_head_down_and_leaves_the_model_alone():
    model = tiny_fcn()
    assert [name for name, _ in cascade(model)] == ["head", "block 3", "block 2", "block 1"]
    assert [stage_label(["head", "block 3", "block 2", "block 1"], k) for k in range(4)] == [
        "head", "head + block 3", "head + blocks 3-2", "head + blocks 3-1 (all layers)"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(1)
    ecg, meta = rng.normal(size=(12, 4, 64)).astype(np.float32), rng.random((12, 2)).astype(np.float32)
    trained = integrated_gradients(model, ecg, meta, n_steps=16).ecg
    cam = upsample(fcn_cam(model, ecg, meta)[0], 64)
    state = torch.random.get_rng_state()
    result = randomisation_check(model, ecg, meta, trained, trained_cam=cam, n_steps=16, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is as it was
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert result["n"] == 12 and len(result["stages"]) == 4
    maps = result["maps"]
    assert set(maps) == {"integrated gradients (signed)", "|integrated gradients|", "class activation map"}
    signed, absolute = maps["integrated gradients (signed)"], maps["|integrated gradients|"]
    # the signed map forgets the trained model; |IG| from an all-zero baseline keeps following |input|
    assert abs(signed["median"][-1]) < 0.3 and signed["passes"]
    assert absolute["median"][-1] > signed["median"][-1] + 0.15
    again = randomisation_check(model, ecg, meta, trained, trained_cam=cam, n_steps=16, seed=3)
    assert again == result  # one seed, one answer


def test_wave_contributions_are_checked_and_only_drawn_maps_are_listed_as_drawn():
    model = tiny_fcn()
    rng = np.random.default_rng(2)
    ecg, meta = rng.normal(size=(10, 4, 64)).astype(np.float32), rng.random((10, 2)).astype(np.float32)
    trained = integrated_gradients(model, ecg, meta, n_steps=16).ecg
    fiducials = np.tile(np.array([[10.0, 25.0, 35.0, 55.0]]), (10, 1))
    result = randomisation_check(model, ecg, meta, trained, fiducials=fiducials, n_steps=16, seed=3)
    waves = result["maps"]["wave contributions (signed, per lead and wave)"]
    assert len(waves["median"]) == 4 and abs(waves["median"][-1]) < 0.3 and waves["passes"]
    assert result["drawn"] == ["integrated gradients (signed)", "wave contributions (signed, per lead and wave)"]
    assert "|integrated gradients|" not in result["drawn"] and "not drawn" in result["reference"]
    without = randomisation_check(model, ecg, meta, trained, n_steps=16, seed=3)
    assert "wave contributions (signed, per lead and wave)" not in without["maps"]


def test_a_strip_model_checks_each_leads_net_contribution_instead_of_waves():
    model = tiny_fcn()
    rng = np.random.default_rng(4)
    ecg, meta = rng.normal(size=(10, 4, 64)).astype(np.float32), rng.random((10, 2)).astype(np.float32)
    trained = integrated_gradients(model, ecg, meta, n_steps=16).ecg
    result = randomisation_check(model, ecg, meta, trained, lead_contributions=True, n_steps=16, seed=3)
    leads = result["maps"]["lead contributions (signed, per lead)"]
    assert len(leads["median"]) == 4 and all(-1 <= v <= 1 for v in leads["median"])
    assert leads["passes"] == (abs(leads["median"][-1]) < 0.3)
    assert result["drawn"] == ["integrated gradients (signed)", "lead contributions (signed, per lead)"]
    assert "wave contributions (signed, per lead and wave)" not in result["maps"]
