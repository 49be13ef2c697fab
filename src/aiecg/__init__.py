"""aiecg: AI-ECG models of left-ventricular mass and hypertrophy from the 12-lead ECG."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aiecg")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
