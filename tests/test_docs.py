"""The examples in the public API's docstrings run, with the real model, and print what
they say (doctest: an example whose output differs fails its module); so does every code
block of the README and docs/."""

import doctest
import importlib
import os
import pathlib
import subprocess
import sys

import pytest

MODULES = ["nacrith_codec", "nacrith_codec.api", "nacrith_codec.file",
           "nacrith_codec.plugins.fsspec_compression", "nacrith_codec.plugins.fsspec_filesystem",
           "nacrith_codec.plugins.sevenzip"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"{name} has no examples in its docstrings"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


# Every code block of the README and docs/ runs as written, on its own: in a fresh folder
# holding only a link to fixtures/, with this environment's `python` and `nacrith` first on
# PATH. ```text marks what is not code (a tree, a layout). The install and the test
# command of the README's quick start are what .ci/run runs; here they are checked against it.
ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNERS = {"sh": ["bash", "-euo", "pipefail", "-c"], "python": [sys.executable, "-c"]}


def code_blocks(path: pathlib.Path) -> list[tuple[int, str, str]]:
    """(line number, language, code) of each fenced block in a Markdown file."""
    blocks, start, language, lines = [], None, "", []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```") and start is None:
            start, language, lines = number, line[3:].strip(), []
        elif line.startswith("```"):
            blocks.append((start, language, "\n".join(lines) + "\n"))
            start = None
        elif start is not None:
            lines.append(line)
    assert start is None, f"{path.name}: the block at line {start} is not closed"
    return blocks


BLOCKS = [(path, *block) for path in DOCUMENTS for block in code_blocks(path)]
RUN_BY_CI = ("ci: test command", "pip install")


def test_every_block_is_code_to_run_or_marked_as_text():
    wrong = [f"{path.name}:{line} ({language or 'no language'})"
             for path, line, language, _ in BLOCKS if language not in (*RUNNERS, "text")]
    assert not wrong, f"mark each block sh, python or text: {wrong}"
    assert len([b for b in BLOCKS if b[2] in RUNNERS]) >= 10


def test_the_quick_start_installs_and_tests_as_ci_does():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = {code for path, _, _, code in BLOCKS if path.name == "README.md"}
    install, = [c for c in readme if "pip install" in c and "CMAKE_ARGS" in c]
    flags = install.split('CMAKE_ARGS="', 1)[1].split('"', 1)[0]
    assert f'CMAKE_ARGS:-{flags}}}' in ci and '-e ".[model,test]"' in install \
        and 'pip install --quiet -e ".[model,test]"' in ci
    tests, = [c for c in readme if "ci: test command" in c]
    assert tests.splitlines()[-1] == "python -m pytest -q"


@pytest.mark.parametrize("path, line, language, code", [
    b for b in BLOCKS if b[2] in RUNNERS and not any(m in b[3] for m in RUN_BY_CI)],
    ids=lambda v: v.name if isinstance(v, pathlib.Path) else str(v) if isinstance(v, int)
    else "")
def test_every_code_block_runs_as_written_on_its_own(path, line, language, code, tmp_path):
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(RUNNERS[language] + [code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"{path.name}:{line} failed:\n{r.stdout[-2000:]}{r.stderr[-3000:]}"
