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


INTERRUPTED_IN_STRING_CODE = '''
import sys
from aiecg import cli

def interrupted(args):
    exec("raise KeyboardInterrupt", {})  # Ctrl-C while a dataclass or named tuple is being made on import

help_text, add_options, _ = cli.COMMANDS["plot"]
cli.COMMANDS["plot"] = (help_text, add_options, interrupted)
sys.exit(cli.main(["plot", "any.xml", "--out", "any"]))
'''


def test_an_interrupt_inside_string_code_exits_130_under_python_m(tmp_path):
    """CPython would end a ``python -m`` run by SIGINT (-2) at exit after such an interrupt, even though aiecg
    handled it and returned 130 (seen in CI: 'aiecg predict: interrupted', then status -2)."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "interrupted_main.py").write_text(INTERRUPTED_IN_STRING_CODE)
    src = Path(__file__).resolve().parents[2] / "src"
    done = subprocess.run([sys.executable, "-m", "interrupted_main"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(src)])}, timeout=120)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "aiecg plot: interrupted" in done.stderr
