"""A sanity check of the explanations: cascading model-parameter randomisation.

Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. Sanity checks for saliency maps. NeurIPS 2018. An
explanation of what a model learned must change when what it learned is destroyed. The layers are re-initialised
one after another from the output down (the fusion head, then the convolution blocks from the last to the first;
cumulatively), the maps are recomputed on the same participants with the same baselines, and each participant's
map on the randomised model is compared with its map on the trained model by Spearman's rank correlation over all
leads and time points. A map that keeps a high correlation after the whole network is randomised shows the input
(or the baseline), not the model: with an all-zero baseline |integrated gradients| follows |input| whatever the
weights are, which is why the absolute-value maps are checked separately from the signed ones: they are checked to
show why the report draws no magnitude map (``drawn`` lists the maps it draws). The per-lead, per-wave net
contributions (signed sums of the attribution within P, QRS, ST-T and outside, cut at each participant's fiducials;
:func:`aiecg.explain.waves.wave_contributions`) that the report's wave summary is built from are checked the same
way, over their leads x waves values.

A map *passes* when the median rank correlation with the fully randomised model is below ``max_correlation`` in
absolute value (a randomised head can flip the output's sign, and an inverted map still copies the trained one;
0.3 is a convention of this tool: Adebayo et al. judged the drop visually and by the same rank correlations).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aiecg.evaluate.stats import spearman_r
from aiecg.explain.attributions import fcn_cam, integrated_gradients, upsample
from aiecg.explain.waves import wave_contributions

MAX_CORRELATION = 0.3
SIGNED, ABSOLUTE, CAM, WAVES = ("integrated gradients (signed)", "|integrated gradients|", "class activation map",
                                "wave contributions (signed, per lead and wave)")
LEADS = "lead contributions (signed, per lead)"
DRAWN = (SIGNED, CAM, WAVES, LEADS)
"""The maps the report draws; |integrated gradients| is checked as the reference that fails."""
REFERENCE = "Adebayo et al., Sanity checks for saliency maps, NeurIPS 2018"


@dataclass(frozen=True)
class MapCheck:
    """Rank correlations of one kind of map between the trained and the progressively randomised model.

    Attributes:
        median, q1, q3: per cascade stage, over participants.
        passes: the median correlation at the last stage (everything randomised) is below the bound in absolute
            value.
    """

    median: list[float]
    q1: list[float]
    q3: list[float]
    passes: bool

    def to_dict(self) -> dict[str, object]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "passes": self.passes}


def cascade(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers to re-initialise, from the output down: the head, then each block from the last."""
    blocks = list(model.blocks)
    return [("head", model.head)] + [(f"block {i + 1}", blocks[i]) for i in reversed(range(len(blocks)))]


def stage_label(stages: list[str], k: int) -> str:
    """'head', 'head + block 3', 'head + blocks 3-2', ..., the last marked '(all layers)'."""
    if k == 0:
        label = stages[0]
    else:
        first, last = stages[1].split()[-1], stages[k].split()[-1]
        label = f"{stages[0]} + block {first}" if k == 1 else f"{stages[0]} + blocks {first}-{last}"
    return label + (" (all layers)" if k == len(stages) - 1 else "")


def reinitialise(module: nn.Module) -> None:
    """Every layer of ``module`` back to its initial distribution (its own ``reset_parameters``: fresh weights,
    batch-norm statistics reset)."""
    for layer in module.modules():
        reset = getattr(layer, "reset_parameters", None)
        if callable(reset):
            reset()


def _correlations(trained: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    n = len(trained)
    return spearman_r(trained.reshape(n, -1).astype(np.float64), randomised.reshape(n, -1).astype(np.float64))


def _summary(per_stage: list[np.ndarray], max_correlation: float) -> MapCheck:
    def q(values: np.ndarray, level: float) -> float:
        finite = values[np.isfinite(values)]
        return float(np.quantile(finite, level)) if finite.size else float("nan")

    median = [q(v, 0.5) for v in per_stage]
    return MapCheck(median, [q(v, 0.25) for v in per_stage], [q(v, 0.75) for v in per_stage],
                    bool(np.isfinite(median[-1]) and abs(median[-1]) < max_correlation))


def randomisation_check(model: nn.Module, ecg: np.ndarray, meta: np.ndarray, trained_ig: np.ndarray,
                        meta_baseline: np.ndarray | None = None, ecg_baseline: np.ndarray | None = None,
                        trained_cam: np.ndarray | None = None, fiducials: np.ndarray | None = None,
                        lead_contributions: bool = False, median_samples: int | None = None,
                        n_steps: int = 50, max_evaluations: int = 128, seed: int = 0,
                        max_correlation: float = MAX_CORRELATION,
                        progress: Callable[[str], None] | None = None,
                        randomised_maps: list[np.ndarray] | None = None) -> dict[str, object]:
    """Cascading randomisation of ``model`` (left unchanged: a copy is randomised) for the participants
    ``ecg``/``meta`` whose trained maps are ``trained_ig`` ([n, leads, samples], integrated gradients with
    ``ecg_baseline`` (default all zeros; [leads, samples] or [n, leads, samples]) and ``meta_baseline``) and,
    for the FCN, ``trained_cam`` ([n, samples]); with ``fiducials`` ([n, 4], :data:`aiecg.explain.waves.FIDUCIALS`)
    the wave contributions are checked too; with ``lead_contributions`` (a rhythm strip, which has no waves to
    cut) each lead's net contribution (its attribution summed over time). With ``median_samples`` (a model of both
    inputs, median beat then strip joined in time) the waves are cut in the first ``median_samples`` samples and
    the lead contributions summed over the rest.

    ``randomised_maps``, when given, receives the integrated-gradients maps of the fully randomised model (so a
    summary of the trained maps can be set beside the same summary of maps that know nothing).

    Returns:
        What ``explain.json`` stores: the stages, and per map (signed and absolute integrated gradients, the
        class activation map) the median and quartiles of the rank correlations per stage and whether it passes.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        randomised = copy.deepcopy(model).eval()
        stages, correlations = [], {"signed": [], "absolute": [], "cam": [], "waves": [], "leads": []}
        beat, strip = ((slice(None), slice(None)) if median_samples is None else
                       (slice(None, median_samples), slice(median_samples, None)))

        def waves_of(ig: np.ndarray) -> np.ndarray:
            return wave_contributions(ig[:, :, beat], fiducials)

        def leads_of(ig: np.ndarray) -> np.ndarray:
            return ig[:, :, strip].sum(axis=2)

        trained_waves = None if fiducials is None else waves_of(trained_ig)
        for name, module in cascade(randomised):
            reinitialise(module)
            stages.append(name)
            if progress is not None:
                progress(name)
            ig = integrated_gradients(randomised, ecg, meta, ecg_baseline=ecg_baseline, meta_baseline=meta_baseline,
                                      n_steps=n_steps,
                                      max_evaluations=max_evaluations).ecg
            correlations["signed"].append(_correlations(trained_ig, ig))
            correlations["absolute"].append(_correlations(np.abs(trained_ig), np.abs(ig)))
            if trained_waves is not None:
                correlations["waves"].append(_correlations(trained_waves, waves_of(ig)))
            if lead_contributions:
                correlations["leads"].append(_correlations(leads_of(trained_ig), leads_of(ig)))
            if trained_cam is not None:
                cam, _ = fcn_cam(randomised, ecg, meta)
                correlations["cam"].append(_correlations(trained_cam, upsample(cam, trained_cam.shape[1])))
        if randomised_maps is not None:
            randomised_maps.append(ig)
    finally:
        torch.random.set_rng_state(generator_state)
    maps = {SIGNED: _summary(correlations["signed"], max_correlation),
            ABSOLUTE: _summary(correlations["absolute"], max_correlation)}
    if trained_cam is not None:
        maps[CAM] = _summary(correlations["cam"], max_correlation)
    if trained_waves is not None:
        maps[WAVES] = _summary(correlations["waves"], max_correlation)
    if lead_contributions:
        maps[LEADS] = _summary(correlations["leads"], max_correlation)
    cumulative = [stage_label(stages, k) for k in range(len(stages))]
    return {"method": f"cascading model-parameter randomisation ({REFERENCE}); Spearman rank correlation of each "
                      "participant's map on the trained and on the randomised model, over all leads and time points",
            "n": int(len(ecg)), "seed": seed, "max_correlation": max_correlation, "stages": cumulative,
            "maps": {name: check.to_dict() for name, check in maps.items()},
            "drawn": [name for name in DRAWN if name in maps],
            "reference": f"{ABSOLUTE} is not drawn: magnitudes follow |input - baseline| whatever the weights are, "
                         "and the check shows it"}
