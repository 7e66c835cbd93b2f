"""Render Quarto ``.qmd`` reports to HTML, Word and PDF, with or without the Quarto CLI.

:func:`render` uses the ``quarto`` command when it is on ``PATH`` (``engine="auto"``) and
otherwise drives the same parts Quarto drives: a Jupyter kernel running the cells (nbclient,
ipykernel, the current interpreter), pandoc for HTML and Word (from ``pypandoc-binary``), and
Typst for PDF (the ``typst`` package; pandoc writes the Typst markup). Both engines first check
the report against the subset below, so a report that renders one way renders the other way
too; anything outside it is refused with the file and line, never rendered wrongly.

Supported subset
----------------
Front matter (YAML between ``---`` lines at the top):
  ``title``, ``subtitle``, ``abstract`` (text); ``author`` (a name, or a list of names or of
  ``{name: ...}``); ``date`` (a date, text, or ``today``); ``lang`` (default ``en``);
  ``toc`` (true/false);
  ``jupyter: python3``; ``execute:`` document defaults for ``echo``, ``eval``, ``output``,
  ``include``, ``warning``; ``format:`` a name or mapping among ``html``, ``docx``, ``typst``,
  each ``default`` or with the option ``toc``. Refused: ``params:`` (Quarto takes Jupyter
  parameters from a cell, see below), ``format: pdf`` (that is LaTeX in Quarto; write
  ``typst``), any other key.
Code cells:
  ```` ```{python} ```` fences only (other engines refused), options as leading
  ``#| key: value`` lines: ``echo``, ``eval``, ``include``, ``warning`` (true/false),
  ``output`` (true/false/``asis``), ``label``, ``fig-cap``, ``fig-alt``, ``tbl-cap``, ``tags``.
  A cell labelled ``fig-*`` must have ``fig-cap`` and ``fig-alt`` and show exactly one image;
  a cell labelled ``tbl-*`` must have ``tbl-cap`` and show exactly one Markdown table (use
  :func:`outcomes.report.journal_table`); numbered cells must run and be shown. A numbered
  cell that shows nothing at all (its section's data do not exist in this study) is left out
  and the numbers close up; the Markdown must not refer to it (say so in text the cell's
  section prints). Images
  anywhere else, HTML-only output (e.g. a bare DataFrame) and other rich outputs are refused.
Parameters:
  the cell tagged ``parameters`` (``#| tags: [parameters]``) holds the defaults; values given
  to :func:`render` must be names assigned there and Python literals, and are assigned in a
  cell inserted right after it (papermill's and Quarto's convention).
Markdown:
  pandoc Markdown, with inline expressions `` `{python} expr` `` (replaced by ``str(value)``,
  or the value's ``_repr_markdown_()``), and cross references ``@fig-x`` / ``@tbl-x`` (also
  ``@Fig-x``), which become "Figure 1" / "Table 2" linked to the figure or table. Refused:
  fenced divs (``:::``, i.e. callouts, panels, figure divs), shortcodes ``{{< >}}``, labels in
  Markdown (``{#fig-...}``, ``{#sec-...}``), section/equation references, bracketed
  references ``[@...]`` and citations (write ``\\@`` for a literal @), raw blocks
  ```` ```{=html} ````, and inline code of other engines.
Execution:
  cells run in order in the report's folder; a cell error stops the render with the file and
  line of the failing statement. Anything a cell writes to stderr (Python warnings, messages)
  never enters the report: it is returned in :attr:`RenderResult.warnings` (dropped for cells
  with ``warning: false``), and ``on_warning="error"`` makes it fail the render instead.
  With the Quarto engine, Quarto's own rules apply (stderr is shown unless
  ``warning: false``) and :attr:`RenderResult.warnings` stays empty.

Output: ``<stem>.html`` (self-contained, one file), ``<stem>.docx``, ``<stem>.pdf`` in
``out_dir``; with the environment variable ``SOURCE_DATE_EPOCH`` set, the same report gives
byte-identical files (pandoc and Typst stamp that time instead of now). Figures are PNG:
matplotlib at 300 dpi, plotnine at its theme's ``dpi`` (:func:`outcomes.report.theme_outcomes`:
300). Figure and table numbers are written into the captions ("Figure 1.", "Table 1.") so all
three formats number alike. Through Quarto, the same reports need Quarto 1.4 or later (inline
expressions) and render PDF with ``--to typst``.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outcomes.errors import InputError
from outcomes.report import _assets
from outcomes.report.qmd import (
    CodeCell,
    InlineExpr,
    MarkdownChunk,
    QmdDocument,
    RenderError,
    parse_qmd,
    substitute_markdown,
)

__all__ = ["FORMATS", "CapturedWarning", "RenderResult", "render"]

#: Output formats and their file suffixes.
FORMATS: dict[str, str] = {"html": ".html", "docx": ".docx", "pdf": ".pdf"}
#: Our format names as Quarto calls them (PDF goes through Typst in both engines).
QUARTO_FORMATS: dict[str, str] = {"html": "html", "docx": "docx", "pdf": "typst"}
FIGURE_DPI = 300
#: Figures at least this wide (inches) are set to the full text width instead.
FULL_WIDTH_IN = 6.0

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")

_SETUP = f"""\
%config InlineBackend.figure_formats = ["png"]
%config InlineBackend.figure_format = "png"
%config InlineBackend.rc = {{"figure.dpi": {FIGURE_DPI}}}
def _outcomes_inline(value):
    markdown = getattr(value, "_repr_markdown_", None)
    return markdown() if callable(markdown) else str(value)
"""


@dataclass(frozen=True)
class CapturedWarning:
    """Something a cell (or pandoc/Typst) wrote to stderr while rendering.

    Attributes
    ----------
    path, line
        The report and the line of the cell (or inline expression) that produced it.
    label
        The cell label, if any.
    source
        ``"cell"``, ``"pandoc"`` or ``"typst"``.
    text
        What was written, ANSI colours removed.
    """

    path: Path
    line: int | None
    label: str | None
    source: str
    text: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.text.strip()}"


class RenderResult(dict[str, Path]):
    """The rendered files, keyed by format (``"html"``, ``"docx"``, ``"pdf"``).

    Attributes
    ----------
    warnings
        :class:`CapturedWarning` for everything written to stderr during the render.
    engine
        ``"quarto"`` or ``"builtin"``.
    seconds
        Wall time of the render.
    """

    def __init__(
        self,
        paths: Mapping[str, Path],
        warnings: Iterable[CapturedWarning],
        engine: str,
        seconds: float,
    ) -> None:
        super().__init__(paths)
        self.warnings = list(warnings)
        self.engine = engine
        self.seconds = seconds


def render(
    qmd_path: str | Path,
    *,
    to: str | Iterable[str] = ("html", "pdf", "docx"),
    params: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    engine: str = "auto",
    on_warning: str = "record",
    timeout: float = 600,
    keep_intermediate: bool = False,
) -> RenderResult:
    """Render a ``.qmd`` report to HTML, PDF and/or Word.

    Parameters
    ----------
    qmd_path
        The report. Its cells run with the report's folder as working directory.
    to
        One format or several, among ``"html"``, ``"pdf"``, ``"docx"``.
    params
        Values for names assigned in the report's ``parameters`` cell.
    out_dir
        Where to write ``<stem>.<ext>`` (default: the report's folder); created if missing.
    engine
        ``"auto"`` (Quarto when the ``quarto`` command is on ``PATH``, else built-in),
        ``"quarto"`` or ``"builtin"``.
    on_warning
        ``"record"`` (warnings go to :attr:`RenderResult.warnings`) or ``"error"`` (any
        warning fails the render).
    timeout
        Seconds one cell may run (built-in engine).
    keep_intermediate
        Built-in engine: also keep the pandoc Markdown, the Typst markup and the figure PNGs
        in ``<out_dir>/<stem>_files/`` (for checking what pandoc and Typst were given).

    Returns
    -------
    RenderResult
        A dict from format to output path, with ``warnings``, ``engine`` and ``seconds``.

    Raises
    ------
    RenderError
        Unsupported constructs, failing cells (with file and line), bad parameters, or a
        warning under ``on_warning="error"``.
    InputError
        Unknown format, engine or ``on_warning`` value.

    Examples
    --------
    >>> from outcomes.report import render
    >>> result = render("reports/trial.qmd", params={"snapshot": 3})  # doctest: +SKIP
    >>> result["pdf"], result.warnings  # doctest: +SKIP
    """
    started = time.perf_counter()
    path = Path(qmd_path).resolve()
    formats = _formats(to)
    if engine not in ("auto", "quarto", "builtin"):
        raise InputError(f"engine must be 'auto', 'quarto' or 'builtin', not {engine!r}")
    if on_warning not in ("record", "error"):
        raise InputError(f"on_warning must be 'record' or 'error', not {on_warning!r}")
    doc = parse_qmd(path)
    params = dict(params or {})
    _check_params(doc, params)
    out = Path(out_dir).resolve() if out_dir is not None else path.parent
    out.mkdir(parents=True, exist_ok=True)
    quarto = shutil.which("quarto")
    if engine == "quarto" and quarto is None:
        raise InputError("engine='quarto' but the quarto command is not on PATH")
    if engine == "quarto" or (engine == "auto" and quarto is not None):
        paths, found = _render_quarto(str(quarto), doc, formats, params, out)
        used = "quarto"
    else:
        paths, found = _render_builtin(doc, formats, params, out, timeout, keep_intermediate)
        used = "builtin"
    if on_warning == "error" and found:
        raise RenderError(
            found[0].path, found[0].line, f"warning while rendering: {found[0].text.strip()}"
        )
    return RenderResult(paths, found, used, time.perf_counter() - started)


def _formats(to: str | Iterable[str]) -> list[str]:
    formats = [to] if isinstance(to, str) else list(to)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise InputError(f"formats must be among {sorted(FORMATS)}, got {formats!r}")
    return list(dict.fromkeys(formats))


def _check_params(doc: QmdDocument, params: dict[str, Any]) -> None:
    if not params:
        return
    names = doc.parameter_names()
    if not names:
        raise RenderError(
            doc.path, None, "parameters were given but the report has no cell tagged 'parameters'"
        )
    for name, value in params.items():
        if name not in names:
            raise RenderError(
                doc.path,
                None,
                f"unknown parameter {name!r} (the parameters cell assigns {', '.join(names)})",
            )
        try:
            same = ast.literal_eval(repr(value)) == value
        except (ValueError, SyntaxError):
            same = False
        if not same:
            raise RenderError(
                doc.path,
                None,
                f"parameter {name!r} must be a Python literal (number, text, "
                f"bool, None, list, dict), got {type(value).__name__}",
            )


# --------------------------------------------------------------------------- Quarto engine


def _render_quarto(
    quarto: str, doc: QmdDocument, formats: list[str], params: dict[str, Any], out: Path
) -> tuple[dict[str, Path], list[CapturedWarning]]:
    cmd = [quarto, "render", str(doc.path), "--output-dir", str(out), "-M", "embed-resources:true"]
    cmd += ["--to", ",".join(QUARTO_FORMATS[fmt] for fmt in formats)]
    for name, value in params.items():
        cmd += ["-P", f"{name}:{json.dumps(value)}"]
    proc = subprocess.run(cmd, cwd=doc.path.parent, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RenderError(doc.path, None, f"quarto render failed:\n{proc.stderr.strip()}")
    paths = {fmt: out / (doc.path.stem + FORMATS[fmt]) for fmt in formats}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise RenderError(doc.path, None, f"quarto did not write {', '.join(missing)}")
    return paths, []


# --------------------------------------------------------------------------- built-in engine


@dataclass
class _Step:
    """One notebook cell and what it stands for in the report."""

    kind: str  # "setup", "cell", "params" or "inline"
    part: CodeCell | InlineExpr | None = None


def _render_builtin(
    doc: QmdDocument,
    formats: list[str],
    params: dict[str, Any],
    out: Path,
    timeout: float,
    keep: bool,
) -> tuple[dict[str, Path], list[CapturedWarning]]:
    needed = ["nbclient", "nbformat", "ipykernel", "jupyter_client", "pypandoc"]
    needed += ["typst"] if "pdf" in formats else []
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"rendering without Quarto needs {', '.join(missing)}: install outcomes[reports]"
        )
    with tempfile.TemporaryDirectory(prefix="outcomes-render-") as tmp:
        work = Path(tmp)
        steps, outputs = _execute(doc, params, work, timeout)
        found: list[CapturedWarning] = []
        markdown = _assemble(doc, steps, outputs, work, found)
        (work / "report.md").write_text(markdown, encoding="utf-8")
        paths = {}
        for fmt in formats:
            target = out / (doc.path.stem + FORMATS[fmt])
            _PANDOC_WRITERS[fmt](doc, work, target, found)
            paths[fmt] = target
        if keep:
            kept = out / f"{doc.path.stem}_files"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(work / "figures", kept / "figures")
            for name in ("report.md", "report.typ"):
                if (work / name).exists():
                    shutil.copy2(work / name, kept / name)
    return paths, found


def _steps(doc: QmdDocument, params: dict[str, Any]) -> list[_Step]:
    steps = [_Step("setup")]
    for part in doc.parts:
        if isinstance(part, MarkdownChunk):
            steps += [_Step("inline", e) for e in part.inlines]
        elif part.options["eval"]:
            steps.append(_Step("cell", part))
            if part.is_parameters and params:
                steps.append(_Step("params", part))
    return steps


def _step_source(step: _Step, params: dict[str, Any]) -> str:
    if step.kind == "setup":
        return _SETUP
    if step.kind == "params":
        return "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    if step.kind == "inline":
        assert isinstance(step.part, InlineExpr)
        return f"print(_outcomes_inline(({step.part.expr})), end='')"
    assert isinstance(step.part, CodeCell)
    return step.part.source


def _kernel_manager(work: Path) -> Any:
    """A kernel manager for a kernel running this interpreter (whatever kernels are installed)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = work / "kernels" / "outcomes-python"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--HistoryManager.enabled=False",
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": "Python (outcomes report)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(work / "kernels")])
    return KernelManager(kernel_name="outcomes-python", kernel_spec_manager=specs)


def _execute(
    doc: QmdDocument, params: dict[str, Any], work: Path, timeout: float
) -> tuple[list[_Step], list[list[dict[str, Any]]]]:
    with warnings.catch_warnings():
        # jupyter_core announces a future change of its folders as a DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    steps = _steps(doc, params)
    if len(steps) == 1:  # nothing to run but the set-up: no kernel needed
        return steps, [[]]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(_step_source(s, params)) for s in steps]
    manager = _kernel_manager(work)
    client = NotebookClient(
        nb,
        km=manager,
        timeout=timeout,
        allow_errors=False,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(doc.path.parent)}},
    )
    # the kernel's debugger otherwise prints a "frozen modules" notice on start (Python 3.11)
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            # cleanup_kc: shut the kernel down and close its channels even though we made km
            with client.setup_kernel(env=env, cleanup_kc=True):
                for index, (step, cell) in enumerate(zip(steps, nb.cells, strict=True)):
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError:
                        raise RenderError(
                            doc.path, _step_line(step), f"cell ran longer than {timeout:g} s"
                        ) from None
                    except CellExecutionError as exc:
                        raise _cell_error(doc, step, cell, exc) from None
                    except DeadKernelError:
                        raise RenderError(
                            doc.path, _step_line(step), "the kernel died while running this cell"
                        ) from None
        finally:
            manager.context.destroy(linger=0)
    return steps, [list(cell.outputs) for cell in nb.cells]


def _step_line(step: _Step) -> int | None:
    if isinstance(step.part, CodeCell):
        return step.part.line
    if isinstance(step.part, InlineExpr):
        return step.part.line
    return None


def _cell_error(doc: QmdDocument, step: _Step, cell: Any, exc: Any) -> RenderError:
    ename, evalue = getattr(exc, "ename", "Error"), getattr(exc, "evalue", str(exc))
    if step.kind == "setup":
        return RenderError(doc.path, None, f"kernel set-up failed: {ename}: {evalue}")
    line = _step_line(step)
    if isinstance(step.part, CodeCell) and step.kind == "cell":
        traceback = _ANSI.sub("", str(getattr(exc, "traceback", "")))
        frames = [
            int(n)
            for count, n in _CELL_FRAME.findall(traceback)
            if int(count) == cell.get("execution_count")
        ]
        if frames:
            line = step.part.body_line + frames[-1] - 1
    what = "inline expression" if step.kind == "inline" else "cell"
    if step.kind == "params":
        what = "injected parameters"
    return RenderError(doc.path, line, f"{what} failed: {ename}: {_ANSI.sub('', evalue)}")


# --------------------------------------------------------------------------- Markdown assembly


def _assemble(
    doc: QmdDocument,
    steps: list[_Step],
    outputs: list[list[dict[str, Any]]],
    work: Path,
    found: list[CapturedWarning],
) -> str:
    cell_outputs: dict[int, list[dict[str, Any]]] = {}
    for step, outs in zip(steps, outputs, strict=True):
        if step.kind == "inline":
            assert isinstance(step.part, InlineExpr)
            text, rich = _inline_value(outs)
            if rich:
                raise RenderError(
                    doc.path,
                    step.part.line,
                    "inline expression displayed rich output; it must evaluate to a value",
                )
            step.part.value = text
        if step.kind in ("inline", "cell"):
            _collect_warnings(doc, step, outs, found)
        if step.kind == "cell":
            cell_outputs[id(step.part)] = outs
    _renumber_shown(doc, cell_outputs)
    (work / "figures").mkdir()
    blocks = [_metadata_block(doc)]
    for part in doc.parts:
        if isinstance(part, MarkdownChunk):
            blocks.append(substitute_markdown(doc, part))
        else:
            blocks.append(_cell_markdown(doc, part, cell_outputs.get(id(part), []), work))
    return "\n\n".join(b for b in blocks if b) + "\n"


def _renumber_shown(doc: QmdDocument, cell_outputs: dict[int, list[dict[str, Any]]]) -> None:
    """Number only the figure and table cells that showed something; refuse references in the
    Markdown to one that showed nothing (its section's data do not exist in this study)."""
    counts: dict[str, int] = {}
    numbers: dict[str, int] = {}
    for cell in doc.cells:
        label = cell.label or ""
        if label not in doc.numbers:
            continue
        if any(o["output_type"] in _SHOWN for o in cell_outputs.get(id(cell), [])):
            kind = label.split("-", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
            numbers[label] = counts[kind]
    for part in doc.parts:
        if isinstance(part, MarkdownChunk):
            for ref in re.finditer(r"@([Ff]ig|[Tt]bl)-[\w-]+", "\n".join(part.lines)):
                label = ref[0][1].lower() + ref[0][2:]
                if label in doc.numbers and label not in numbers:
                    raise RenderError(
                        doc.path,
                        part.line,
                        f"@{ref[0][1:]} refers to a cell that showed nothing in this render; "
                        "mention it only in text printed by the cell's own section",
                    )
    doc.numbers = numbers


_SHOWN = ("display_data", "execute_result")


def _inline_value(outs: list[dict[str, Any]]) -> tuple[str, bool]:
    text = "".join(o.get("text", "") for o in outs if o.get("name") == "stdout")
    rich = any(o["output_type"] in ("display_data", "execute_result") for o in outs)
    return text, rich


def _collect_warnings(
    doc: QmdDocument, step: _Step, outs: list[dict[str, Any]], found: list[CapturedWarning]
) -> None:
    part = step.part
    if isinstance(part, CodeCell) and not part.options["warning"]:
        return
    label = part.label if isinstance(part, CodeCell) else None
    for output in outs:
        if output["output_type"] == "stream" and output.get("name") == "stderr":
            found.append(
                CapturedWarning(
                    doc.path, _step_line(step), label, "cell", _ANSI.sub("", output["text"])
                )
            )


def _metadata_block(doc: QmdDocument) -> str:
    meta = {
        k: v
        for k, v in doc.meta.items()
        if k in ("title", "subtitle", "author", "date", "abstract", "lang")
    }
    if "title" not in meta:
        meta["pagetitle"] = doc.path.stem
    return "---\n" + json.dumps(meta, ensure_ascii=False) + "\n---"


def _fence(text: str, classes: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks} {classes}\n{text.rstrip()}\n{ticks}"


def _cell_markdown(doc: QmdDocument, cell: CodeCell, outs: list[dict[str, Any]], work: Path) -> str:
    opts = cell.options
    if not opts["include"]:
        return ""
    blocks: list[str] = []
    if opts["echo"]:
        blocks.append(_fence(cell.code, "{.python .cell-code}"))
    if not opts["output"]:
        return "\n\n".join(blocks)
    label = cell.label or ""
    images = tables = 0
    stdout: list[str] = []

    def flush() -> None:
        if stdout:
            text = "".join(stdout)
            blocks.append(text if opts["output"] == "asis" else _fence(text, "{.output}"))
            stdout.clear()

    for output in outs:
        kind = output["output_type"]
        if kind == "stream":
            if output.get("name") == "stdout":
                stdout.append(output["text"])
            continue
        if kind not in ("display_data", "execute_result"):
            continue
        flush()
        data = output.get("data", {})
        if "image/png" in data:
            images += 1
            if not label.startswith("fig-") or images > 1:
                raise RenderError(
                    doc.path,
                    cell.line,
                    "a figure must be the one image of a cell labelled "
                    "'fig-...' with fig-cap and fig-alt",
                )
            blocks.append(_figure(doc, cell, base64.b64decode(data["image/png"]), work))
        elif "text/markdown" in data:
            text = data["text/markdown"].strip()
            if label.startswith("tbl-"):
                tables += 1
                blocks.append(_table(doc, cell, text, tables))
            else:
                blocks.append(text)
        elif set(data) <= {"text/plain"}:
            blocks.append(_fence(data.get("text/plain", ""), "{.output}"))
        elif "text/html" in data:
            raise RenderError(
                doc.path,
                cell.line,
                "cell displays HTML-only output (a bare DataFrame?), "
                "which cannot go to Word or PDF; show journal_table(df) instead",
            )
        else:
            kinds = ", ".join(sorted(set(data) - {"text/plain"}))
            raise RenderError(doc.path, cell.line, f"unsupported cell output type: {kinds}")
    flush()
    if label.startswith(("fig-", "tbl-")) and label not in doc.numbers:
        return "\n\n".join(blocks)  # showed nothing: left out, and the numbers close up
    if label.startswith("fig-") and images == 0:
        raise RenderError(doc.path, cell.line, f"cell {label!r} showed no figure")
    if label.startswith("tbl-") and tables == 0:
        raise RenderError(doc.path, cell.line, f"cell {label!r} showed no Markdown table")
    return "\n\n".join(blocks)


def _attr(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _figure(doc: QmdDocument, cell: CodeCell, png: bytes, work: Path) -> str:
    label = cell.options["label"]
    name = f"figures/{label}.png"
    (work / name).write_bytes(png)
    width_px, dpi = _png_size(png)
    inches = width_px / dpi
    width = "100%" if inches >= FULL_WIDTH_IN else f"{inches:.2f}in"
    caption = f"**Figure {doc.numbers[label]}.** {cell.options['fig-cap']}"
    return f"![{caption}]({name}){{#{label} alt={_attr(cell.options['fig-alt'])} width={width}}}"


def _png_size(png: bytes) -> tuple[int, float]:
    """Pixel width and resolution (dots per inch; 96 if the PNG does not say) of a PNG."""
    width = struct.unpack(">I", png[16:20])[0]
    at = png.find(b"pHYs")
    if at > 0:
        per_x, _, unit = struct.unpack(">IIB", png[at + 4 : at + 13])
        if unit == 1 and per_x > 0:
            return width, per_x * 0.0254
    return width, 96.0


def _table(doc: QmdDocument, cell: CodeCell, text: str, count: int) -> str:
    label = cell.options["label"]
    lines = text.splitlines()
    rows = len(list(itertools.takewhile(lambda ln: ln.lstrip().startswith("|"), lines)))
    rest = "\n".join(lines[rows:]).strip()
    if any(re.match(r"^\s*(:|Table:)\s", ln) for ln in lines):
        raise RenderError(
            doc.path,
            cell.line,
            f"the table of cell {label!r} already has a caption; give it only with tbl-cap",
        )
    note = re.fullmatch(r"::: \{\.table-note[^\n]*\}\n.*\n:::", rest, flags=re.S)
    if count > 1 or rows == 0 or (rest and note is None):
        raise RenderError(
            doc.path,
            cell.line,
            f"cell {label!r} must show exactly one Markdown pipe table "
            "(journal_table(df), with an optional note) and nothing else",
        )
    caption = f"**Table {doc.numbers[label]}.** {cell.options['tbl-cap']}"
    table = "\n".join(lines[:rows])
    return f"{table}\n\n: {caption} {{#{label}}}" + (f"\n\n{rest}" if rest else "")


# --------------------------------------------------------------------------- pandoc and Typst


def _pandoc(
    doc: QmdDocument, work: Path, args: list[str], found: list[CapturedWarning]
) -> subprocess.CompletedProcess[bytes]:
    import pypandoc

    # images written in the Markdown are found relative to the report, like Quarto does
    resources = os.pathsep.join([str(work), str(doc.path.parent)])
    cmd = [
        pypandoc.get_pandoc_path(),
        "report.md",
        "-f",
        "markdown-citations",
        "-s",
        f"--resource-path={resources}",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=work, capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RenderError(doc.path, None, f"pandoc failed: {stderr.strip()}")
    for text in re.split(r"(?m)^(?=\[WARNING\])", stderr):
        if text.strip():
            found.append(CapturedWarning(doc.path, None, None, "pandoc", text.strip()))
    return proc


def _toc(doc: QmdDocument, quarto_format: str) -> list[str]:
    return ["--toc"] if doc.format_options.get(quarto_format, {}).get("toc") else []


def _write_html(doc: QmdDocument, work: Path, target: Path, found: list[CapturedWarning]) -> None:
    (work / "report.css").write_text(_assets.HTML_CSS, encoding="utf-8")
    _pandoc(
        doc,
        work,
        [
            "-t",
            "html5",
            "--embed-resources",
            "--css",
            "report.css",
            "--mathml",
            "-o",
            str(target),
            *_toc(doc, "html"),
        ],
        found,
    )


def _write_docx(doc: QmdDocument, work: Path, target: Path, found: list[CapturedWarning]) -> None:
    import pypandoc

    reference = work / "reference.docx"
    if not reference.exists():
        reference.write_bytes(_assets.reference_docx(pypandoc.get_pandoc_path()))
    # --columns=1: every pipe table counts as "wide", so pandoc gives Word the column widths
    # in proportion to the separator dashes (journal_table sizes them to the contents) instead
    # of equal columns, which Word may autofit but LibreOffice does not.
    _pandoc(
        doc,
        work,
        [
            "-t",
            "docx",
            "--columns=1",
            "--reference-doc",
            str(reference),
            "-o",
            str(target),
            *_toc(doc, "docx"),
        ],
        found,
    )


def _write_pdf(doc: QmdDocument, work: Path, target: Path, found: list[CapturedWarning]) -> None:
    import typst

    (work / "template.typ").write_text(_assets.TYPST_TEMPLATE, encoding="utf-8")
    proc = _pandoc(
        doc, work, ["-t", "typst", "--template", "template.typ", *_toc(doc, "typst")], found
    )
    markup = _typst_alt_text(doc, proc.stdout.decode("utf-8"))
    (work / "report.typ").write_text(markup, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", typst.TypstWarning)
        try:
            typst.compile(
                str(work / "report.typ"), output=str(target), root=str(work), timestamp=_epoch()
            )
        except typst.TypstError as exc:
            message = f"Typst failed: {exc.message}\n{exc.diagnostic}"
            raise RenderError(doc.path, None, message) from None
    found.extend(
        CapturedWarning(doc.path, None, None, "typst", str(w.message))
        for w in caught
        if issubclass(w.category, typst.TypstWarning)
    )


def _epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds convention), which pandoc also honours."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return None
    if not value.isdigit():
        raise InputError(f"SOURCE_DATE_EPOCH must be whole seconds, got {value!r}")
    return int(value)


def _typst_alt_text(doc: QmdDocument, markup: str) -> str:
    """Give each figure image its alt text (pandoc's Typst writer drops it)."""
    for cell in doc.cells:
        label = cell.label or ""
        if label.startswith("fig-"):
            alt = cell.options["fig-alt"].replace("\\", "\\\\").replace('"', '\\"')
            markup = markup.replace(
                f'image("figures/{label}.png"', f'image("figures/{label}.png", alt: "{alt}"'
            )
    return markup


_PANDOC_WRITERS = {"html": _write_html, "docx": _write_docx, "pdf": _write_pdf}
