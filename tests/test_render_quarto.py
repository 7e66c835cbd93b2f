"""The Quarto engine's side of the contract, with a stand-in ``quarto`` command on PATH.

The stand-in records its arguments and writes the files Quarto would write. The real CLI is
exercised in test_render_example.py where it is installed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from outcomes.errors import InputError
from outcomes.report import RenderError, render

STAND_IN = """\
#!{python}
import json, pathlib, sys
args = sys.argv[1:]
pathlib.Path({log!r}).write_text(json.dumps(args))
if {fail!r}:
    sys.stderr.write("ERROR: something went wrong in quarto\\n")
    sys.exit(1)
out = pathlib.Path(args[args.index("--output-dir") + 1])
stem = pathlib.Path(args[1]).stem
suffix = {{"html": ".html", "docx": ".docx", "typst": ".pdf"}}
for fmt in args[args.index("--to") + 1].split(","):
    (out / (stem + suffix[fmt])).write_text("rendered")
"""

REPORT = "```{python}\n#| tags: [parameters]\nn = 1\nname = 'a'\n```\n\nText.\n"


def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "args.json"
    script = bin_dir / "quarto"
    script.write_text(STAND_IN.format(python=sys.executable, log=str(log), fail=fail))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_auto_uses_quarto_when_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = stand_in(tmp_path, monkeypatch)
    qmd = tmp_path / "r.qmd"
    qmd.write_text(REPORT)
    result = render(qmd, params={"n": 2, "name": "b c"}, out_dir=tmp_path / "out")
    assert result.engine == "quarto"
    assert result == {
        "html": tmp_path / "out" / "r.html",
        "pdf": tmp_path / "out" / "r.pdf",
        "docx": tmp_path / "out" / "r.docx",
    }
    args = json.loads(log.read_text())
    assert args[:2] == ["render", str(qmd)]
    assert args[args.index("--to") + 1] == "html,typst,docx"  # PDF through Typst
    assert [args[i + 1] for i, a in enumerate(args) if a == "-P"] == ["n:2", 'name:"b c"']


def test_quarto_failure_and_unsupported_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = stand_in(tmp_path, monkeypatch, fail=True)
    qmd = tmp_path / "r.qmd"
    qmd.write_text(REPORT)
    with pytest.raises(RenderError, match="quarto render failed:\nERROR: something went wrong"):
        render(qmd, to="html", engine="quarto")
    log.unlink()
    qmd.write_text("```{r}\n1\n```\n")
    with pytest.raises(RenderError, match=r"r.qmd:1: only \{python\} cells"):
        render(qmd, to="html", engine="quarto")
    assert not log.exists()  # refused before quarto ran


def test_quarto_engine_needs_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    qmd = tmp_path / "r.qmd"
    qmd.write_text("Text.\n")
    with pytest.raises(InputError, match="quarto command is not on PATH"):
        render(qmd, engine="quarto")
