"""Reference inputs (baselines) for integrated gradients that look like an ECG but carry no individual mass
information.

Integrated gradients explain ``output(x) - output(baseline)``; the attribution of each input is its difference from
the baseline times the average gradient along the path. With the all-zero ECG (the isoelectric line) every sample
that departs from zero gets attribution in proportion to its size, so |attribution| follows |input| whatever the
model learned: the maps then fail the model-randomisation check (Adebayo et al., NeurIPS 2018). Sturmfels, Lundberg
& Lee (Distill 2020, "Visualizing the impact of feature attribution baselines") show that a baseline drawn from the
data distribution avoids this; here the baseline of each participant is the mean median beat of the reference
population of their sex (the training participants where the training split is known), so the map shows how this
participant's beat differs from a typical beat of their sex and what that difference does to the output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from aiecg.explain.attributions import ExplainError

MIN_PER_SEX = 2


@dataclass(frozen=True)
class SexMeanBaseline:
    """The mean median beat per sex of a reference population.

    Attributes:
        beats: [2, leads, samples] (row 0: women, row 1: men), in the model's input units.
        counts: participants averaged per sex.
        source: what the reference population is (stored in ``explain.json``).
        what: what is averaged (``median beat``, or ``rhythm strip`` for a rhythm-strip model: unaligned beats
            average out to a near-isoelectric strip that keeps each sex's mean baseline level and noise).
    """

    beats: np.ndarray
    counts: tuple[int, int]
    source: str
    what: str = "median beat"

    def for_participants(self, is_male: np.ndarray) -> np.ndarray:
        """Each participant's baseline [n, leads, samples]; a participant of unknown sex gets the mean of both."""
        sex = np.asarray(is_male, dtype=float)
        both = self.beats.mean(axis=0)
        out = np.where((sex == 1)[:, None, None], self.beats[1], self.beats[0])
        return np.where(np.isfinite(sex)[:, None, None], out, both).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {"kind": f"mean {self.what} per sex", "source": self.source, "n_women": self.counts[0],
                "n_men": self.counts[1],
                "reference": "Sturmfels, Lundberg & Lee, Visualizing the impact of feature attribution baselines, "
                             "Distill 2020"}


def sex_mean_baseline(ecg: np.ndarray, is_male: np.ndarray, source: str, what: str = "median beat"
                      ) -> SexMeanBaseline:
    """Mean median beat of each sex over ``ecg`` [n, leads, samples] (:func:`streamed_sex_mean_baseline` of one
    chunk)."""
    return streamed_sex_mean_baseline([(ecg, is_male)], source, what)


def streamed_sex_mean_baseline(chunks: Iterable[tuple[np.ndarray, np.ndarray]], source: str,
                               what: str = "median beat") -> SexMeanBaseline:
    """Mean input of each sex over ``chunks`` of (``ecg`` [n, leads, samples], ``is_male`` [n]), summed in float64
    one chunk at a time, so a large reference population (a training split's rhythm strips: gigabytes) is never in
    memory at once; refused when a sex has fewer than two participants (their mean would be one person's beat,
    which carries that person's mass)."""
    sums: np.ndarray | None = None
    counts = [0, 0]
    for ecg, is_male in chunks:
        sex = np.asarray(is_male, dtype=float)
        if sums is None:
            sums = np.zeros((2, *np.shape(ecg)[1:]), np.float64)
        for code in (0, 1):
            chosen = sex == code
            counts[code] += int(chosen.sum())
            sums[code] += np.asarray(ecg)[chosen].sum(axis=0, dtype=np.float64)
    if sums is None or min(counts) < MIN_PER_SEX:
        raise ExplainError(f"the reference population for the explanation baseline ({source}) has {counts[0]} "
                           f"women and {counts[1]} men; need at least {MIN_PER_SEX} of each (explain a larger "
                           "cohort, or pass --cohort with the bundle's training cohort)")
    beats = (sums / np.asarray(counts, np.float64)[:, None, None]).astype(np.float32)
    return SexMeanBaseline(beats, (counts[0], counts[1]), source, what)
