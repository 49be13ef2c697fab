"""Attribution by wave and lead, the per-sex mean-beat baseline and the generator's truth by wave."""

import numpy as np
import pandas as pd
import pytest

from aiecg.explain.attributions import ExplainError
from aiecg.explain.baselines import sex_mean_baseline
from aiecg.explain.truth import effect_by_wave
from aiecg.explain.waves import WAVES, truth_summary, wave_contributions, wave_masks, wave_shares, wave_summary


def test_waves_are_cut_at_each_participants_own_fiducials():
    fid = np.array([[2, 5, 8, 12], [np.nan, 4, 6, 9]], dtype=float)
    masks = wave_masks(fid, 14)
    assert masks.shape == (2, 4, 14)
    assert np.flatnonzero(masks[0, 0]).tolist() == [2, 3, 4]  # P: onset to QRS onset
    assert np.flatnonzero(masks[0, 1]).tolist() == [5, 6, 7, 8]  # QRS: onset to offset
    assert np.flatnonzero(masks[0, 2]).tolist() == [9, 10, 11, 12]  # ST-T: after the QRS to T end
    assert not masks[1, 0].any()  # no P wave found: its samples count as outside
    assert (masks.sum(axis=1) == 1).all()  # every sample in exactly one wave


def test_shares_sum_to_one_and_put_attribution_where_it_is():
    attr = np.zeros((2, 3, 14))
    attr[0, 1, 6] = 3.0  # QRS of lead 1
    attr[0, 2, 10] = -1.0  # ST-T of lead 2
    attr[1, 0, 0] = 2.0  # outside
    fid = np.array([[2, 5, 8, 12], [2, 5, 8, 12]], dtype=float)
    share, signed = wave_shares(attr, fid)
    np.testing.assert_allclose(share.sum(axis=(1, 2)), 1.0)
    assert share[0, 1, WAVES.index("QRS")] == pytest.approx(0.75)
    assert share[0, 2, WAVES.index("ST-T")] == pytest.approx(0.25)
    assert signed[0, 2, WAVES.index("ST-T")] == pytest.approx(-1.0)
    table = wave_summary(attr, fid, ["I", "II", "V1"], n_resamples=50)
    everything = table[table["lead"] == "all"].set_index("wave")
    assert everything.loc["QRS", "share"] == pytest.approx(0.375)  # mean of 0.75 and 0
    assert everything.loc["outside", "share"] == pytest.approx(0.5)
    assert (table["share_low"] <= table["share"] + 1e-12).all()
    assert (table["share"] <= table["share_high"] + 1e-12).all()
    assert set(table["lead"]) == {"all", "I", "II", "V1"} and (table["n"] == 2).all()


def test_net_contributions_cancel_within_a_wave_and_their_shares_sum_to_one():
    attr = np.zeros((1, 2, 14))
    attr[0, 0, 5], attr[0, 0, 7] = 2.0, -2.0  # QRS of lead 0: large |attribution|, no net contribution
    attr[0, 1, 10] = 1.0  # ST-T of lead 1
    attr[0, 1, 0] = -3.0  # outside
    fid = np.array([[2, 5, 8, 12]], dtype=float)
    net = wave_contributions(attr, fid)
    assert net[0, 0, WAVES.index("QRS")] == 0.0 and net[0, 1, WAVES.index("outside")] == -3.0
    assert net.sum() == pytest.approx(attr.sum())  # completeness carries over: the waves partition the beat
    table = wave_summary(attr, fid, ["I", "II"], n_resamples=20).set_index(["lead", "wave"])
    assert table.loc[("I", "QRS"), "share"] == pytest.approx(0.5)  # half of |attribution| ...
    assert table.loc[("I", "QRS"), "net_share"] == 0.0  # ... but nothing of the net contribution
    assert table.loc[("II", "ST-T"), "net_share"] == pytest.approx(0.25)
    assert table.loc[("all", "outside"), "net_share"] == pytest.approx(0.75)
    assert table.xs("all")["net_share"].sum() == pytest.approx(1.0)
    assert table.loc[("II", "outside"), "signed"] == pytest.approx(-3.0)


def test_the_baseline_is_the_mean_beat_of_each_sex_and_needs_both():
    rng = np.random.default_rng(0)
    ecg = rng.normal(size=(6, 2, 5)).astype(np.float32)
    sex = np.array([0, 1, 0, 1, 1, 0])
    base = sex_mean_baseline(ecg, sex, "test")
    np.testing.assert_allclose(base.beats[0], ecg[sex == 0].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(base.beats[1], ecg[sex == 1].mean(axis=0), rtol=1e-6)
    per = base.for_participants(np.array([1.0, 0.0, np.nan]))
    np.testing.assert_allclose(per[0], base.beats[1])
    np.testing.assert_allclose(per[2], base.beats.mean(axis=0))  # unknown sex: between the two
    assert base.to_dict()["n_women"] == 3
    with pytest.raises(ExplainError, match="1 women and 5 men"):
        sex_mean_baseline(ecg, np.array([0, 1, 1, 1, 1, 1]), "a tiny cohort")


def test_the_generators_mass_effect_sits_in_qrs_and_st_t_and_vanishes_at_mean_mass():
    people = pd.DataFrame({"sex": [1, 0, 1], "age": [60.0, 55.0, 70.0], "bmi": [27.0, 24.0, 30.0],
                           "mass_z": [2.5, -1.5, 0.0], "sbp_untreated": [150.0, 120.0, 134.0],
                           "volume_z": [0.5, -0.2, 0.0]})
    effect = effect_by_wave(people, ["I", "V1", "V5"])
    assert effect.shape == (3, 3, 3)
    np.testing.assert_allclose(effect[:2].sum(axis=(1, 2)), 1.0)
    assert np.isnan(effect[2]).all()  # at mean mass, mass changes nothing
    by_wave = effect[:2].sum(axis=1)
    assert (by_wave[:, 1] + by_wave[:, 2] > 0.8).all()  # the generator puts mass into QRS and repolarisation
    np.testing.assert_allclose(effect_by_wave(people.iloc[:2], ["I", "V1", "V5"]), effect[:2])  # seeded
    summary = truth_summary(effect[:2], ["I", "V1", "V5"], n_resamples=20)
    assert set(summary["wave"]) == {"P", "QRS", "ST-T"} and len(summary) == 12


def test_the_baseline_of_a_large_reference_is_read_in_chunks_and_equals_the_whole_mean(monkeypatch):
    """A training split's rhythm strips (gigabytes) are averaged chunk by chunk, never loaded at once."""
    from types import SimpleNamespace

    import aiecg.workflows.explain as explain

    rng = np.random.default_rng(1)
    ecg = rng.normal(size=(10, 2, 7)).astype(np.float32)
    sex = np.array([0, 1, 0, 1, 1, 0, 0, 1, 1, 0])
    ids = np.asarray([f"p{i}" for i in range(10)])
    loaded = []

    def build_arrays(store, frame, chunk_ids, spec, leads, encoder, kind):
        rows = [int(i[1:]) for i in chunk_ids]
        loaded.append((len(rows), kind))
        return SimpleNamespace(ecg=ecg[rows], is_male=sex[rows])

    monkeypatch.setattr(explain, "build_arrays", build_arrays)
    bundle = SimpleNamespace(target=None, input_spec={"leads": ["I", "V5"]}, input_kind="rhythm")
    base = explain.reference_baseline(None, None, ids, bundle, "test", chunk=3)
    assert loaded == [(3, "rhythm"), (3, "rhythm"), (3, "rhythm"), (1, "rhythm")]
    whole = sex_mean_baseline(ecg, sex, "test", "rhythm strip")
    np.testing.assert_allclose(base.beats, whole.beats, rtol=1e-6)
    assert base.counts == (5, 5) and base.to_dict()["kind"] == "mean rhythm strip per sex"
