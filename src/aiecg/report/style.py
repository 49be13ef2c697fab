"""One look for every figure: the Okabe-Ito palette (colour-blind safe) paired with line styles and markers, so
each series stays distinguishable in greyscale print; figures are built on ``matplotlib.figure.Figure`` (Agg),
never through pyplot's global state.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color universal design"
BLACK, ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
CYCLE = [BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY, BLACK]
# dotted (":") is kept for reference lines (identity, chance, prevalence), so no data series uses it
LINESTYLES = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1, 1, 1)), (0, (12, 3))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
GREY = "#7f7f7f"

UNITS = {"ilvm": "g/m²", "lvm": "g", "lvedv": "mL", "ilvedv": "mL/m²", "mvr": "g/mL"}
NAMES = {"ilvm": "indexed LV mass", "lvm": "LV mass", "lvedv": "LV end-diastolic volume",
         "ilvedv": "indexed LV end-diastolic volume", "mvr": "LV mass/volume ratio"}
TARGET_NAMES = {"INDEXED_MASS": "indexed LV mass", "MASS": "LV mass", "LVH": "LVH", "VOL": "LV end-diastolic volume",
                "INDEXED_VOL": "indexed LV end-diastolic volume", "MASS_VOL_RATIO": "LV mass/volume ratio",
                "HN": "LV remodelling"}
CLINICAL_NAMES = {"sbp": "systolic BP (mmHg)", "dbp": "diastolic BP (mmHg)", "age": "age (years)",
                  "bmi": "BMI (kg/m²)", "non_hdl_chol": "non-HDL cholesterol", "total_chol": "total cholesterol",
                  "vent_rate": "ventricular rate (bpm)", "high_cholesterol": "high cholesterol",
                  "hypertension": "hypertension", "diabetes": "diabetes", "alcohol": "alcohol", "sex": "male sex",
                  "ethnicity": "ethnicity", "smoking": "smoking"}
SMOKING_LEVELS = {"0": "never", "1": "previous", "2": "current"}
MODEL_NAMES = {"fcn": "FCN", "resnet": "ResNet"}
SEX_MARKER = {0: "o", 1: "^"}
SEX_LABEL = {0: "female", 1: "male"}
SEX_COLOUR = {0: VERMILLION, 1: BLUE}

RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
      "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none",
      "savefig.dpi": 150, "figure.dpi": 100,
      "text.parse_math": False}  # labels are plain text: a "$" in a run or model name is not TeX (it crashed)


def new_figure(width: float, height: float) -> Figure:
    """A figure in the report's style (size in inches), with constrained layout so labels never overlap."""
    import matplotlib

    matplotlib.rcParams.update(RC)
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, directory: Path, name: str) -> dict[str, str]:
    """Write ``name.png`` (for the page) and ``name.svg`` (for a manuscript); returns the relative file names."""
    directory.mkdir(parents=True, exist_ok=True)
    fig.savefig(directory / f"{name}.png", dpi=150)
    fig.savefig(directory / f"{name}.svg", metadata={"Date": None})
    return {"png": f"{name}.png", "svg": f"{name}.svg"}


def axis_label(stem: str, what: str) -> str:
    """``what indexed LV mass (g/m²)``."""
    unit = UNITS.get(stem)
    return f"{what} {NAMES.get(stem, stem)}" + (f" ({unit})" if unit else "")


def readable(text: str) -> str:
    """Internal names (``fcn (INDEXED_MASS)``, ``standardised INDEXED_MASS``) in the words of a paper."""
    import re

    for name, words in sorted(TARGET_NAMES.items(), key=lambda item: -len(item[0])):
        text = re.sub(rf"\b{name}\b", words, text)
    for name, words in MODEL_NAMES.items():
        text = re.sub(rf"^{name}\b", words, text)
    return text


def clinical_name(column: str) -> str:
    """``sbp`` -> ``systolic BP (mmHg)``; an encoded level ``smoking=2`` -> ``smoking: current``."""
    name, _, level = column.partition("=")
    words = CLINICAL_NAMES.get(name, name.replace("_", " "))
    if level:
        return f"{words}: {SMOKING_LEVELS.get(level, level) if name == 'smoking' else level}"
    return words
