"""The synthetic participants: calibration to Petersen 2017, LVH and remodelling rules, enrichment."""

import numpy as np
import pytest

from aiecg.synth.population import (
    LVReference,
    bsa_du_bois,
    lvh_from_ilvm,
    remodelling_class,
    sample_participants,
    select_cohort,
)


@pytest.fixture(scope="module")
def people():
    return sample_participants(20000, np.random.default_rng(123))


@pytest.mark.parametrize(("sex", "mean", "sd", "vol_mean", "vol_sd"), [(1, 53.0, 9.0, 82.0, 15.0),
                                                                       (0, 42.0, 7.0, 72.0, 12.0)])
def test_indexed_mass_and_volume_match_petersen_2017(people, sex, mean, sd, vol_mean, vol_sd):
    group = people[people["sex"] == sex]
    assert abs(group["ilvm"].mean() - mean) < 0.5
    assert abs(group["ilvm"].std() - sd) <= 1.1
    assert abs(group["ilvedv"].mean() - vol_mean) < 1.0
    assert abs(group["ilvedv"].std() - vol_sd) < 1.0


def test_population_ranges_and_correlations(people):
    assert people["age"].between(45, 80).all()
    assert 0.46 < people["sex"].mean() < 0.50
    assert 0.008 < people["lvh"].mean() < 0.025  # UK Biobank: 717 / 48,835 = 1.5%
    assert np.corrcoef(people["age"], people["sbp"])[0, 1] > 0.15
    assert np.corrcoef(people["bmi"], people["sbp"])[0, 1] > 0.1
    men, women = people[people["sex"] == 1], people[people["sex"] == 0]
    assert men["height"].mean() - women["height"].mean() > 10
    np.testing.assert_allclose(people["bsa"], bsa_du_bois(people["height"], people["weight"]))
    np.testing.assert_allclose(people["bmi"], people["weight"] / (people["height"] / 100) ** 2, rtol=1e-9)
    np.testing.assert_allclose(people["lvm"], people["ilvm"] * people["bsa"])
    np.testing.assert_allclose(people["lvm_lvedv_ratio"], people["lvm"] / people["lvedv"])


def test_lvh_rule_and_remodelling_classes(people):
    ref = LVReference()
    cut = np.where(people["sex"] == 1, 70.0, 55.0)
    assert (people["lvh"] == (people["ilvm"] > cut).astype(int)).all()
    ratio_cut = np.where(people["sex"] == 1, ref.ratio_cutoff[0], ref.ratio_cutoff[1])
    high = people["lvm_lvedv_ratio"] > ratio_cut
    expected = np.select([~people["lvh"].astype(bool) & ~high, ~people["lvh"].astype(bool) & high,
                          people["lvh"].astype(bool) & ~high], [0, 1, 2], 3)
    assert (people["remodelling"] == expected).all()
    assert set(np.unique(people["remodelling"])) == {0, 1, 2, 3}


def test_rule_helpers_on_edge_values():
    sex = np.array([1, 1, 0, 0])
    assert lvh_from_ilvm(np.array([70.0, 70.1, 55.0, 55.1]), sex).tolist() == [0, 1, 0, 1]
    assert remodelling_class(np.array([0, 0, 1, 1]), np.array([0.5, 1.2, 0.5, 1.2]), sex).tolist() == [0, 1, 2, 3]


def test_enrichment_gives_exact_share_and_is_deterministic():
    a = select_cohort(300, np.random.default_rng([7, 0]), lvh_prevalence=0.2)
    b = select_cohort(300, np.random.default_rng([7, 0]), lvh_prevalence=0.2)
    assert len(a) == 300 and int(a["lvh"].sum()) == 60
    assert a.equals(b)
    natural = select_cohort(300, np.random.default_rng([7, 0]))
    assert natural["lvh"].sum() < 30


def test_population_shift_moves_risk_factors():
    base = sample_participants(5000, np.random.default_rng(1))
    shifted = sample_participants(5000, np.random.default_rng(1), population_shift=1.0)
    assert shifted["age"].mean() > base["age"].mean() + 2
    assert shifted["sbp"].mean() > base["sbp"].mean() + 3
