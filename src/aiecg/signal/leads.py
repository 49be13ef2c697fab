"""Lead algebra: derive the four dependent limb leads from I and II, and select leads by name.

Einthoven's and Goldberger's relations (all leads share the same electrodes): III = II - I,
aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2. Leads sit on axis -2, so the functions work on a
strip [lead, time], a median beat [lead, window] and a beat stack [beat, lead, window] alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aiecg.ecg import normalise_lead_name

DERIVED_LIMB_LEADS: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")


def _derive(name: str, lead_i: np.ndarray, lead_ii: np.ndarray) -> np.ndarray:
    if name == "III":
        return lead_ii - lead_i
    if name == "aVR":
        return -(lead_i + lead_ii) / 2
    if name == "aVL":
        return lead_i - lead_ii / 2
    return lead_ii - lead_i / 2  # aVF


def derive_limb_leads(signal: np.ndarray, leads: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Append the missing ones of III, aVR, aVL, aVF, computed from I and II.

    Returns the signal with the derived rows appended (existing rows unchanged) and the new lead names.
    Records that already hold all four are returned as they are.

    Raises:
        KeyError: a limb lead is missing and I or II is not there to derive it from.
    """
    names = tuple(normalise_lead_name(n) for n in leads)
    x = np.asarray(signal)
    if x.shape[-2] != len(names):
        raise ValueError(f"signal has {x.shape[-2]} leads on axis -2 but {len(names)} lead names were given")
    missing = [n for n in DERIVED_LIMB_LEADS if n not in names]
    if not missing:
        return x, names
    if "I" not in names or "II" not in names:
        raise KeyError(f"cannot derive {', '.join(missing)}: leads I and II are needed, the record has {names}")
    lead_i = x[..., names.index("I"), :]
    lead_ii = x[..., names.index("II"), :]
    extra = np.stack([_derive(n, lead_i, lead_ii) for n in missing], axis=-2).astype(x.dtype, copy=False)
    return np.concatenate([x, extra], axis=-2), names + tuple(missing)


def select_leads(
    signal: np.ndarray, leads: Sequence[str], wanted: Sequence[str], derive: bool = True
) -> np.ndarray:
    """The rows named ``wanted``, in that order (axis -2), deriving limb leads from I and II when allowed.

    Raises:
        KeyError: a wanted lead is absent (and cannot be derived); the message lists what the record has.
    """
    x = np.asarray(signal)
    names = tuple(normalise_lead_name(n) for n in leads)
    wanted_names = [normalise_lead_name(n) for n in wanted]
    if derive and any(n in DERIVED_LIMB_LEADS and n not in names for n in wanted_names):
        x, names = derive_limb_leads(x, names)
    missing = [n for n in wanted_names if n not in names]
    if missing:
        raise KeyError(f"lead(s) {', '.join(missing)} not in the record (it has {', '.join(names)})")
    return np.take(x, [names.index(n) for n in wanted_names], axis=-2)
