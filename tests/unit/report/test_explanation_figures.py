"""Which checked maps the report says it draws, for new and older ``aiecg explain`` folders."""

import pandas as pd

from aiecg.report.figures.explanations import drawn_maps

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
