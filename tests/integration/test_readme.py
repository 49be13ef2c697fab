"""Every code block of the README can be copied and works (issue 25).

Each block carries a marker comment (``<!-- readme-test: KIND -->``) right above it, except the opening ``make``
block: ``run`` blocks are executed as written (``bash``, or the Python interpreter) in a folder that holds a tiny
equivalent of the demo's data under the README's names (three ECGs of the session's synthetic cohort and its
trained run, ``tests/conftest.py``); ``parse`` blocks, whose commands take minutes to hours or need data aiecg
cannot download, have every command parsed by the real parser (``aiecg``'s, ``train.py``'s) and Python compiled
with every ``aiecg.`` name it uses present; the ``cohort`` block is validated against the cohort schema.
"""

import ast
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (\w+)[^>]*-->\n)?```(\w+)\n(.*?)```", re.S)
N_FILES = 3


def _blocks() -> list[tuple[str | None, str, str, int]]:
    text = README.read_text()
    return [(m.group(1), m.group(2), m.group(3), text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)]


def _commands(script: str) -> list[list[str]]:
    """The shell commands of a block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def test_the_readme_starts_with_the_two_commands_and_marks_every_other_block():
    blocks = _blocks()
    assert README.read_text().startswith("# aiecg\n\n```bash\nmake demo ")
    assert [c[:2] for c in _commands(blocks[0][2])] == [["make", "demo"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    unmarked = [line for kind, _, _, line in blocks[1:] if kind not in ("run", "parse", "cohort")]
    assert not unmarked, f"README blocks without a readme-test marker at lines {unmarked}"
    text = README.read_text()
    assert ".venv/bin/aiecg " not in text.replace("type `.venv/bin/aiecg`", "")  # one spelling: aiecg
    assert "pip install" not in text  # make installs every extra


def _parse(words: list[str], where: str) -> None:
    from aiecg.cli import build_parser

    if words[0] in ("aiecg", "torchrun"):
        argv = words[words.index("aiecg") + 1:] if "aiecg" in words else words[words.index("-m") + 2:]
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{where}: {' '.join(words)} does not parse ({exc})")
    elif words[:2] == ["python", "train.py"]:
        sys.path.insert(0, str(ROOT))
        try:
            import train

            train.parse_args(words[2:])
        finally:
            sys.path.remove(str(ROOT))
    else:
        pytest.fail(f"{where}: unknown command {words[0]!r}")


def test_every_parse_block_parses():
    import aiecg

    for kind, language, code, line in _blocks()[1:]:
        if kind != "parse":
            continue
        if language == "bash":
            for words in _commands(code):
                _parse(words, f"README.md:{line}")
        else:
            tree = ast.parse(code)
            used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name) and n.value.id == "aiecg"}
            assert used and all(hasattr(aiecg, name) for name in used), used


def test_the_cohort_example_is_a_valid_cohort_yaml():
    from aiecg.data.cohort_schema import validate_mapping

    (code,) = [code for kind, _, code, _ in _blocks() if kind == "cohort"]
    validate_mapping(yaml.safe_load(code), "README.md")


@pytest.fixture
def sandbox(synth_cohort, ilvm_run, tmp_path) -> Path:
    """The README's names over a tiny equivalent of the demo's data: ``data/synth`` (cohort YAML and table of three
    participants, their ECGs), ``runs/fcn_ilvm`` (the session's trained run, read only), ``archive/`` and
    ``ecgs/`` (ECG folders), ``participants.csv`` (their clinical table), ``ecg.xml`` and ``more.xml``."""
    files = sorted((synth_cohort / "ecg").glob("*.xml"))[:N_FILES]
    data = tmp_path / "data" / "synth"
    (data / "ecg").mkdir(parents=True)
    for file in files:
        shutil.copy(file, data / "ecg" / file.name)
    eids = [int(f.name.split("_")[0]) for f in files]
    table = pd.read_csv(synth_cohort / "cohort.csv")
    table = table[table["eid"].isin(eids)]
    table.to_csv(data / "cohort.csv", index=False)
    mapping = yaml.safe_load((synth_cohort / "cohort.yaml").read_text())
    mapping["table"] = "cohort.csv"
    (data / "cohort.yaml").write_text(yaml.safe_dump(mapping))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "fcn_ilvm").symlink_to(ilvm_run, target_is_directory=True)
    shutil.copytree(data / "ecg", tmp_path / "archive")
    shutil.copytree(data / "ecg", tmp_path / "ecgs")
    table.to_csv(tmp_path / "participants.csv", index=False)
    shutil.copy(files[0], tmp_path / "ecg.xml")
    shutil.copy(files[1], tmp_path / "more.xml")
    return tmp_path


def test_every_run_block_runs_as_written(sandbox):
    run_blocks = [(language, code, line) for kind, language, code, line in _blocks() if kind == "run"]
    assert {language for language, _, _ in run_blocks} == {"bash", "python"}
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "AIECG_THREADS": "2", "HOME": str(sandbox),
           "MPLBACKEND": "Agg"}
    for language, code, line in run_blocks:
        if language == "python":
            assert "data/synth/ecg/1000001_20205_2_0.xml" not in code or (
                sandbox / "data/synth/ecg/1000001_20205_2_0.xml").exists()
            command = [sys.executable, "-c", code]
        else:
            command = ["bash", "-e", "-o", "pipefail", "-c", code]  # as written: no progress bars off a terminal
        done = subprocess.run(command, cwd=sandbox, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"README.md:{line}: {done.stderr[-3000:]}"
    predictions = pd.read_csv(sandbox / "predictions.csv")
    assert len(predictions) == N_FILES and (predictions["status"] == "ok").all()
    assert (sandbox / "measured" / "measurements.csv").exists() and (sandbox / "ecg.png").exists()
    assert len(list((sandbox / "sheets").glob("*.png"))) == N_FILES
