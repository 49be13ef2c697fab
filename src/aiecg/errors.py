"""Exceptions that name the file, record or column at fault and say how to fix it."""

from __future__ import annotations


class AiecgError(Exception):
    """Base class of every error aiecg raises on purpose."""


class ECGValidationError(AiecgError, ValueError):
    """An ECG array or its metadata is not valid (shape, finiteness, sampling rate, lead names)."""


class ECGReadError(AiecgError):
    """A file could not be read as an ECG.

    Attributes:
        path: the file that failed.
        reason: what was wrong, in words a user can act on.
    """

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CohortError(AiecgError, ValueError):
    """A cohort table or its YAML mapping is not usable as given."""


class ConfigError(AiecgError, ValueError):
    """A run configuration asks for something that does not fit together (e.g. re-sampling a regression target)."""


class BundleError(AiecgError):
    """A model bundle is missing, foreign, tampered with or incompatible."""
