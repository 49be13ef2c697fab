"""A Ctrl-C that Python swallows (raised inside a finaliser) still ends the command as interrupted."""

import os
import signal
import time
import weakref

import pytest

from aiecg.cli import run_interruptible


class _Finalised:
    pass


def _interrupted_inside_a_finaliser() -> str:
    """Deliver SIGINT while a weakref callback runs: Python prints 'Exception ignored' and goes on."""
    obj = _Finalised()
    weakref.finalize(obj, lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.05)))
    del obj  # the finaliser runs here, and the KeyboardInterrupt raised inside it is swallowed
    return "finished"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_interrupt_is_raised_again_when_the_command_returns():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (CI's jobs ignore it)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_interruptible(_interrupted_inside_a_finaliser)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    finally:
        signal.signal(signal.SIGINT, previous)


def test_without_an_interrupt_the_result_comes_back_and_an_ignored_sigint_stays_ignored():
    assert run_interruptible(lambda: 42) == 42
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert run_interruptible(lambda: os.kill(os.getpid(), signal.SIGINT) or "ran") == "ran"
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
