"""Exceptions that name the file, record or column at fault and say how to fix it."""

from __future__ import annotations


class AiecgError(Exception):
    """Base class of every error aiecg raises on purpose."""


def one_line(exc: BaseException, limit: int = 240) -> str:
    """A library exception's message as one line for an aiecg error (its lines joined, whitespace collapsed, cut
    to ``limit`` characters; the exception's type where it says nothing)."""
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


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


class TrainingError(AiecgError):
    """A training or fine-tuning run produced no model worth writing."""


class TrainingDiverged(TrainingError):
    """A training or fine-tuning loss became NaN or infinite: the run stops and writes no model.

    Attributes:
        epoch: the epoch whose loss was not finite.
        which: ``training`` or ``validation``.
        value: the loss (nan, inf).
        lr: the learning rate of that epoch.
    """

    def __init__(self, epoch: int, which: str, value: float, lr: float, flag: str = "--lr", where: str = ""):
        self.epoch, self.which, self.value, self.lr = epoch, which, value, lr
        super().__init__(f"{where}epoch {epoch}: the {which} loss is {value} (not a finite number): training "
                         "diverged, so the run was stopped and no model was written. Lower the learning rate "
                         f"({flag}; it was {lr:g} in this epoch), e.g. to {lr / 10:g}")


class NothingProcessedError(AiecgError):
    """Not one input of a batch command (``prepare``, ``measure``, ``predict``) could be processed: its table,
    one row per input with the reason, is written, and the command exits with code 2."""


def check_processed(counts: dict[str, int], processed: tuple[str, ...], what: str, where: str,
                    error: type[AiecgError] = NothingProcessedError) -> None:
    """THE rule of the batch commands: at least one input must reach one of the ``processed`` statuses.

    Args:
        counts: inputs per status.
        processed: the statuses that count as processed (``ok`` for ``predict``; ``ok``, ``paced`` and
            ``qc_fail`` for ``measure``, which measures what QC refuses).
        what: what the inputs are, plural (``ECGs``, ``files``).
        where: the file that holds each input's reason.

    Raises:
        ``error``: naming how many inputs there were, the statuses they got and where the reasons are.
    """
    if not any(counts.get(status) for status in processed):
        total = sum(counts.values())
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        raise error(f"none of the {total} {what} could be used ({summary}); the reason for each is in {where}")
