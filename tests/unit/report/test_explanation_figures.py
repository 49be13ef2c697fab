"""The figures of an explain folder: predicted and CMR values in the beat plots' titles, one colour scale for the
low and high examples, the class activation map on all 12 leads in the standard layout, and which checked maps
the report says it draws, for new and older ``aiecg explain`` folders."""

import json

import numpy as np
import pandas as pd
import pytest

from aiecg.report.figures import LEAD_ORDER, explanation_plots
from aiecg.report.figures.explanations import drawn_maps, value_text
from aiecg.report.runs import load_run

LEADS = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]  # what the model reads: the limb leads III-aVF are derived


@pytest.fixture
def explain_folder(tmp_path):
    rng = np.random.default_rng(0)
    n, samples = 10, 60
    ecg = rng.normal(0, 0.3, (n, len(LEADS), samples)).astype(np.float32)
    attr = rng.normal(0, 1e-3, ecg.shape).astype(np.float32)
    attr[2] *= 5  # the low example's attributions are the larger: its scale must be the high one's too
    outputs = np.linspace(-1, 1, n).astype(np.float32)
    cam = np.tile(np.sin(np.linspace(0, 3, samples)), (n, 1)) * outputs[:, None]
    np.savez(tmp_path / "attributions.npz", leads=np.array(LEADS), features=np.array([], dtype=str),
             time_ms=np.linspace(-300, 500, samples).astype(np.float32), ecg=ecg, ecg_attr=attr,
             ids=np.array([f"p{i}" for i in range(n)]), outputs=outputs, typical_low=np.asarray(2),
             typical_high=np.asarray(8), cam=cam.astype(np.float32), predicted=np.linspace(40, 60, n),
             true=np.r_[np.linspace(45, 55, n - 1), np.nan])
    (tmp_path / "explain.json").write_text(json.dumps({
        "n": n, "n_steps": 8, "output_units": "standardised INDEXED_MASS", "model": "fcn (INDEXED_MASS)",
        "cohort_name": "tiny", "target": {"name": "INDEXED_MASS", "stem": "ilvm", "kind": "regression"}}))
    return tmp_path


def _limits(figure):
    norms = [c.norm for ax in figure.axes for c in ax.collections
             if c.get_array() is not None and c.norm.vmin is not None]
    return {(float(norm.vmin), float(norm.vmax)) for norm in norms}


def test_beat_plots_show_predicted_and_cmr_values_on_one_colour_scale(explain_folder):
    plots = {plot.name.split("_")[2]: plot for plot in explanation_plots(load_run(explain_folder))
             if plot.name.startswith("explain_beats_")}
    low, high = plots["low"], plots["high"]
    assert "participant p2: predicted 44.4 g/m², CMR 47.5 g/m²" in low.figure.get_suptitle()
    assert "participant p8: predicted 57.8 g/m², CMR 55.0 g/m²" in high.figure.get_suptitle()
    limit = float(np.abs(np.load(explain_folder / "attributions.npz")["ecg_attr"][[2, 8]]).max())
    assert _limits(low.figure) == _limits(high.figure) == {(-limit, limit)}
    assert "share one colour scale" in low.caption


def test_the_class_activation_map_is_drawn_on_twelve_leads_in_the_standard_layout(explain_folder):
    plots = [plot for plot in explanation_plots(load_run(explain_folder)) if plot.name.startswith("explain_cam_")]
    assert [plot.title for plot in plots] == ["Class activation maps (FCN), highest fifth of predictions",
                                              "Class activation maps (FCN), lowest fifth of predictions"]
    data = np.load(explain_folder / "attributions.npz")
    for plot, member in zip(plots, (data["outputs"] >= np.quantile(data["outputs"], 0.8),
                                    data["outputs"] <= np.quantile(data["outputs"], 0.2))):
        panels = sorted((ax for ax in plot.figure.axes if ax.get_visible() and ax.get_title(loc="left")),
                        key=lambda ax: (round(ax.get_position().x0, 3), -round(ax.get_position().y0, 3)))
        assert [ax.get_title(loc="left") for ax in panels] == list(LEAD_ORDER)  # column by column, as on paper
        beat = data["ecg"][member].mean(axis=0)
        by_lead = {ax.get_title(loc="left"): ax.lines[0].get_ydata() for ax in panels}
        np.testing.assert_allclose(by_lead["III"], beat[1] - beat[0], atol=1e-6)  # derived: III = II - I
        np.testing.assert_allclose(by_lead["aVR"], -(beat[0] + beat[1]) / 2, atol=1e-6)
        np.testing.assert_allclose(by_lead["V5"], beat[6], atol=1e-6)
        colours = [c.get_array() for ax in panels for c in ax.collections if c.get_array() is not None]
        np.testing.assert_allclose(colours[0], data["cam"][member].mean(axis=0), atol=1e-6)
        assert len(colours) == 12 and all(np.allclose(colours[0], c) for c in colours)  # one map of time, every lead
        assert "derived from I and II" in plot.caption
    limit = float(max(np.abs(data["cam"][data["outputs"] >= np.quantile(data["outputs"], 0.8)].mean(axis=0)).max(),
                      np.abs(data["cam"][data["outputs"] <= np.quantile(data["outputs"], 0.2)].mean(axis=0)).max()))
    assert _limits(plots[0].figure) == _limits(plots[1].figure) == {(-limit, limit)}


def test_value_text_says_what_is_known():
    class Data(dict):
        files = property(lambda self: list(self))

    data = Data(predicted=np.array([0.73, 0.2]), true=np.array([1.0, np.nan]))
    assert value_text(data, 0, {"kind": "binary", "stem": "lvh"}) == "predicted LVH probability 0.73, CMR: LVH"
    assert value_text(data, 1, {"kind": "binary"}) == "predicted LVH probability 0.20, CMR: not given"
    assert value_text(data, 1, {"kind": "regression", "stem": "lvm"}) == "predicted 0.2 g, CMR not given"
    assert value_text(Data(outputs=np.ones(2)), 0, {}) == ""  # an older explain folder: the raw output instead


MAPS = {"integrated gradients (signed)": {}, "|integrated gradients|": {}, "class activation map": {}}


def test_an_older_explain_whose_wave_figure_draws_attribution_magnitudes_does_not_call_them_undrawn():
    old_waves = pd.DataFrame({"lead": ["all"], "wave": ["QRS"], "share": [0.5], "signed": [0.1]})
    new_waves = old_waves.assign(net_share=[0.4])
    check = {"maps": MAPS}  # an explain.json written before 'drawn' existed
    assert "|integrated gradients|" in drawn_maps(check, old_waves)  # its wave figure draws share of |attribution|
    assert drawn_maps(check, new_waves) == ["integrated gradients (signed)", "class activation map"]
    assert drawn_maps(check, None) == ["integrated gradients (signed)", "class activation map"]
    listed = {"maps": MAPS, "drawn": ["class activation map"]}
    assert drawn_maps(listed, old_waves) == ["class activation map"]  # a check that lists them is believed
