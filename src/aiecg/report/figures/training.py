"""Training curves (loss and learning rate per epoch)."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import (
    Plot,
    register_figure,
)
from aiecg.report.runs import RunData


@register_figure(order=110)
def training_curves(runs: list[RunData]) -> Plot:
    plot = Plot("training_curves", "Training curves",
                "Loss per epoch (solid: training, dashed: validation; the target is standardised, so the loss has "
                "no unit) and learning rate (log scale). Fine-tuning runs show their stages one after another "
                "(shaded alternately); the marker is the best validation epoch of each stage.")
    usable = [run for run in runs if run.epochs]
    if not usable:
        plot.notes.append("no run saved epochs.csv")
        return plot
    fig = style.new_figure(4.2 * min(len(usable), 3), 4.6 * int(np.ceil(len(usable) / 3)))
    subfigs = np.atleast_1d(fig.subfigures(int(np.ceil(len(usable) / 3)), min(len(usable), 3), squeeze=False)).ravel()
    for sub, run in zip(subfigs, usable):
        loss_ax, lr_ax = sub.subplots(2, 1, sharex=True, height_ratios=[2, 1])
        offset = 0
        for k, (stage, table) in enumerate(run.epochs):
            epochs = table["epoch"].to_numpy() + offset
            if len(run.epochs) > 1:
                loss_ax.axvspan(offset + 0.5, epochs.max() + 0.5, color=style.GREY, alpha=0.12 * (k % 2), lw=0)
                loss_ax.annotate(stage, xy=(offset + 1, 1.0), xycoords=("data", "axes fraction"), fontsize=7, va="top")
            loss_ax.plot(epochs, table["train_loss"], "-", color=style.BLUE, label="training" if k == 0 else None)
            loss_ax.plot(epochs, table["val_loss"], "--", color=style.VERMILLION,
                         label="validation" if k == 0 else None)
            best = int(np.argmin(table["val_loss"].to_numpy()))
            loss_ax.plot(epochs[best], table["val_loss"].iloc[best], "o", color=style.VERMILLION, mfc="white",
                         label="best validation" if k == 0 else None)
            if "lr" in table:
                lr_ax.step(epochs, table["lr"], where="mid", color=style.BLACK)
            offset = epochs.max()
        if not any("lr" in t for _, t in run.epochs):
            lr_ax.text(0.5, 0.5, "learning rate not saved", transform=lr_ax.transAxes, ha="center")
        else:
            lr_ax.set_yscale("log")
        loss_ax.set_ylabel("loss")
        loss_ax.legend(frameon=False, fontsize=7)
        lr_ax.set_ylabel("learning rate")
        lr_ax.set_xlabel("epoch" + (" (stages concatenated)" if len(run.epochs) > 1 else ""))
        lr_ax.xaxis.get_major_locator().set_params(integer=True)
        sub.suptitle(run.label, fontsize=10)
    plot.figure = fig
    return plot
