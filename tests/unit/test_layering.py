"""The layering rules of docs/architecture.md, each checked in a fresh interpreter (what a module imports is what
``sys.modules`` holds after importing it there)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(code: str) -> set[str]:
    """Module names loaded in a fresh interpreter after running ``code``."""
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["measure", "--help"], ["synth", "--help"], ["prepare", "--help"],
                                  ["cohort", "--help"], ["report", "--help"],
                                  ["plot", "--help"]])
def test_the_command_line_parses_without_torch(argv):
    loaded = _loaded_after(f"import aiecg.cli\ntry:\n    aiecg.cli.main({argv!r})\nexcept SystemExit:\n    pass")
    assert "aiecg.cli" in loaded and "torch" not in loaded


def test_the_full_parser_still_lists_every_command_and_its_options():
    from aiecg.cli import COMMANDS, build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == set(COMMANDS)
    assert any(a.dest == "cfg__fit__threads" for a in commands["train"]._actions)
    assert any(a.dest == "threads" for a in commands["predict"]._actions)


@pytest.mark.parametrize("package", ["aiecg.signal", "aiecg.io", "aiecg.threads", "aiecg.config"])
def test_lower_floors_import_neither_torch_nor_the_bundle(package):
    loaded = _loaded_after(f"import {package}")
    assert "torch" not in loaded and "aiecg.bundle" not in loaded


def test_training_does_not_import_evaluation():
    loaded = _loaded_after("import aiecg.train.loop, aiecg.train.finetune, aiecg.train.hpo, aiecg.train.distributed")
    assert not {m for m in loaded if m.startswith("aiecg.evaluate")}


def test_the_input_contract_imports_neither_torch_nor_the_bundle():
    loaded = _loaded_after("import aiecg.contract")
    assert "aiecg.contract" in loaded and "torch" not in loaded and "aiecg.bundle" not in loaded


def test_statistics_import_neither_torch_nor_the_bundle_nor_the_store():
    loaded = _loaded_after("import pkgutil, importlib, aiecg.evaluate\n"
                           "for m in pkgutil.iter_modules(aiecg.evaluate.__path__):\n"
                           "    importlib.import_module('aiecg.evaluate.' + m.name)")
    assert "aiecg.evaluate.curves" in loaded and "aiecg.evaluate.evaluation" in loaded
    assert not {"torch", "aiecg.bundle", "aiecg.data.store", "aiecg.data.dataset"} & loaded
