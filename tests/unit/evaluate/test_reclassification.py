"""The categorical NRI of the model over a criterion, counted by hand (Pencina et al. 2008; Leening et al. 2014)."""

import numpy as np
import pytest

from aiecg.evaluate.reclassification import reclassification, reclassification_table


def test_nri_counts_moves_up_and_down_separately_for_events_and_non_events():
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    old = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    new = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    row = reclassification(labels, old, new, seed=0, n_resamples=200)
    assert (row["events"], row["non_events"]) == (5, 10)
    assert (row["events_up"], row["events_down"]) == (2, 1) and (row["non_events_up"], row["non_events_down"]) == (1, 2)
    assert row["nri_events"] == pytest.approx((2 - 1) / 5) and row["nri_non_events"] == pytest.approx((2 - 1) / 10)
    # with two categories, the differences in sensitivity and specificity
    sens = lambda calls: calls[labels == 1].mean()  # noqa: E731
    spec = lambda calls: 1 - calls[labels == 0].mean()  # noqa: E731
    assert row["nri_events"] == pytest.approx(sens(new) - sens(old))
    assert row["nri_non_events"] == pytest.approx(spec(new) - spec(old))
    assert row["nri_total"] == pytest.approx(0.3)
    for name in ("nri_events", "nri_non_events", "nri_total"):
        assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"] and row[f"{name}_low"] < row[f"{name}_high"]
    assert row == reclassification(labels, old, new, seed=0, n_resamples=200)  # seeded


def test_the_table_calls_the_model_at_its_threshold_and_the_criteria_at_their_cut_off_on_shared_participants():
    rng = np.random.default_rng(0)
    labels = (rng.random(80) < 0.3).astype(float)
    model = labels + rng.normal(0, 0.8, 80)
    cornell = np.where(rng.random(80) < 0.1, np.nan, labels * 0.5 + rng.normal(-0.6, 0.5, 80))
    table = reclassification_table(labels, model, 0.5, {"Cornell voltage": cornell, "Sokolow-Lyon": -np.ones(80)},
                                   seed=1, n_resamples=100).set_index("criterion")
    keep = np.isfinite(cornell)
    expected = reclassification(labels[keep], (cornell[keep] >= 0).astype(float), (model[keep] >= 0.5).astype(float),
                                seed=1, n_resamples=100)
    assert table.loc["Cornell voltage", "n"] == keep.sum() and table.loc["Cornell voltage", "model_threshold"] == 0.5
    assert table.loc["Cornell voltage", "nri_events"] == pytest.approx(expected["nri_events"])
    sokolow = table.loc["Sokolow-Lyon"]  # calls no one: every event the model calls moves up
    assert sokolow["events_down"] == 0 and sokolow["events_up"] == np.sum((model >= 0.5) & (labels == 1))
    assert sokolow["nri_non_events"] == pytest.approx(-np.mean(model[labels == 0] >= 0.5))
    with pytest.raises(ValueError, match="0/1"):
        reclassification(labels, np.full(80, 2.0), np.ones(80), seed=0)
    one_class = reclassification(np.ones(5), np.zeros(5), np.ones(5), seed=0, n_resamples=10)
    assert one_class["events_up"] == 5 and np.isnan(one_class["nri_events"])
