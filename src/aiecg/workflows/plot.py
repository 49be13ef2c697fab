"""``aiecg plot``: ECG files -> pictures on standard ECG paper (:mod:`aiecg.report.ecgplot`).

Every input is read first (a file that cannot be read is one clear error before anything is written); then each
is drawn to ``out`` (a file for one input, else a folder of ``<stem>.<format>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiecg.errors import AiecgError
from aiecg.io import read_ecg
from aiecg.report.ecgplot import PaperSettings, PlotError, render_ecg, save_ecg

IMAGE_SUFFIXES = (".png", ".pdf", ".svg")


class PlotInputError(AiecgError, ValueError):
    """``aiecg plot`` cannot draw what it was given (an output path that does not fit the inputs, a layout the
    record cannot fill)."""


def output_paths(inputs: Sequence[str | Path], out: str | Path, image_format: str = "png") -> list[Path]:
    """Where each input's picture goes: ``out`` itself for one input and an image suffix, else
    ``out/<stem>.<image_format>`` (stems made unique by their position when two inputs share one)."""
    out = Path(out)
    if out.suffix.lower() in IMAGE_SUFFIXES:
        if len(inputs) != 1:
            raise PlotInputError(f"--out {out} names one image but {len(inputs)} files were given; pass a folder")
        return [out]
    if out.suffix:
        raise PlotInputError(f"--out {out}: an image must end in {', '.join(IMAGE_SUFFIXES)} (or pass a folder)")
    stems = [Path(p).stem for p in inputs]
    return [out / (f"{stem}.{image_format}" if stems.count(stem) == 1 else f"{stem}_{k + 1}.{image_format}")
            for k, stem in enumerate(stems)]


def plot_files(inputs: Sequence[str | Path], out: str | Path, settings: PaperSettings | None = None,
               fmt: str | None = None, image_format: str = "png") -> dict[str, Any]:
    """Draw every input ECG file on paper; returns the images written and the paper's scale.

    Raises:
        ECGReadError: an input cannot be read (nothing is written).
        PlotInputError: the output path does not fit the inputs, or a record cannot fill the layout.
    """
    settings = settings or PaperSettings()
    paths = output_paths(inputs, out, image_format)
    records = [read_ecg(path, format=fmt) for path in inputs]
    written = []
    for ecg, path in zip(records, paths):
        try:
            fig, sheet = render_ecg(ecg, settings)
        except KeyError as exc:  # a lead the layout needs is absent and cannot be derived
            raise PlotInputError(f"{ecg.source or ecg.record_id}: {exc.args[0]}") from None
        except PlotError as exc:
            raise PlotInputError(str(exc)) from None
        save_ecg(fig, path)
        written.append({"file": str(path), "width_mm": sheet.width_mm, "height_mm": sheet.height_mm})
    return {"images": written, "speed_mm_s": settings.speed_mm_s, "gain_mm_mv": settings.gain_mm_mv,
            "px_per_mm": settings.px_per_mm, "layout": settings.layout}
