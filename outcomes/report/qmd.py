"""Read a Quarto ``.qmd`` file into parts, refusing what the built-in renderer cannot honour.

The supported subset is stated in :mod:`outcomes.report.render`. Everything here works on the
text alone (nothing is executed), so both engines validate a report the same way before it
runs: a report that passes here renders the same through Quarto and through the built-in path.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from outcomes.errors import InputError

__all__ = ["CodeCell", "InlineExpr", "MarkdownChunk", "QmdDocument", "RenderError", "parse_qmd"]

#: Front-matter keys the renderer understands.
FRONT_MATTER_KEYS = frozenset(
    {
        "title",
        "subtitle",
        "author",
        "date",
        "abstract",
        "lang",
        "format",
        "execute",
        "jupyter",
        "toc",
    }
)
#: Output formats that may carry options in ``format:``; ``typst`` is Quarto's PDF-via-Typst.
FORMAT_KEYS = frozenset({"html", "docx", "typst"})
#: Options accepted under each ``format:`` entry.
FORMAT_OPTIONS = frozenset({"toc"})
#: Cell options (``#| key: value``) understood by the renderer.
CELL_OPTIONS = frozenset(
    {
        "label",
        "echo",
        "eval",
        "output",
        "include",
        "warning",
        "fig-cap",
        "fig-alt",
        "tbl-cap",
        "tags",
    }
)
#: Cell options that may also be set for the whole document under ``execute:``.
EXECUTE_OPTIONS = frozenset({"echo", "eval", "output", "include", "warning"})
DEFAULT_OPTIONS: dict[str, Any] = {
    "echo": True,
    "eval": True,
    "output": True,
    "include": True,
    "warning": True,
}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>.*?)\s*$")
_ENGINE = re.compile(r"^\{\s*(?P<engine>[A-Za-z0-9_]+)(?P<rest>[^}]*)\}$")
_OPTION = re.compile(r"^#\|\s?(?P<text>.*)$")
_INLINE_CODE = re.compile(r"(?P<ticks>`+)(?P<body>.+?)(?P=ticks)")
_INLINE_ENGINE = re.compile(r"^\{(?P<engine>[A-Za-z0-9_]+)\}\s*(?P<expr>.*?)\s*$", re.S)
_REF = re.compile(r"(?<![\w\\@])@(?P<name>[A-Za-z][\w-]*[A-Za-z0-9_]|[A-Za-z])")
_LABEL_ATTR = re.compile(r"\{#(?:fig|tbl|sec|eq|lst|thm|lem|cor|prp|cnj|def|exm|exr)-")
_LABEL = re.compile(r"^[A-Za-z][\w-]*$")
_XREF_KINDS = ("fig", "tbl")
_OTHER_XREF_PREFIXES = (
    "sec-",
    "eq-",
    "lst-",
    "thm-",
    "lem-",
    "cor-",
    "prp-",
    "cnj-",
    "def-",
    "exm-",
    "exr-",
)


class RenderError(InputError):
    """A report that cannot be rendered, with the file and line to look at.

    Attributes
    ----------
    path
        The ``.qmd`` file.
    line
        1-based line in that file (``None`` when the problem is not tied to a line).
    """

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


@dataclass
class InlineExpr:
    """An inline expression `` `{python} expr` `` in Markdown text."""

    expr: str
    line: int
    value: str | None = None


@dataclass
class MarkdownChunk:
    """Markdown between code cells; ``lines[i]`` is file line ``line + i``."""

    lines: list[str]
    line: int
    inlines: list[InlineExpr] = field(default_factory=list)


@dataclass
class CodeCell:
    """A ```` ```{python} ```` cell with its options (document defaults already applied)."""

    code: str
    source: str
    options: dict[str, Any]
    line: int
    body_line: int

    @property
    def label(self) -> str | None:
        """The cell's ``label`` option, if any."""
        return self.options.get("label")

    @property
    def is_parameters(self) -> bool:
        """Whether the cell is tagged ``parameters`` (papermill's convention)."""
        return "parameters" in self.options.get("tags", [])


@dataclass
class QmdDocument:
    """A parsed report: metadata, format options, parts in order, and figure/table numbers."""

    path: Path
    meta: dict[str, Any]
    format_options: dict[str, dict[str, Any]]
    parts: list[MarkdownChunk | CodeCell]
    numbers: dict[str, int]

    @property
    def cells(self) -> list[CodeCell]:
        """The code cells in order."""
        return [p for p in self.parts if isinstance(p, CodeCell)]

    def parameter_names(self) -> list[str]:
        """Names assigned at top level of the ``parameters`` cell (empty if there is none)."""
        names: list[str] = []
        for cell in self.cells:
            if cell.is_parameters:
                for node in ast.parse(cell.code).body:
                    targets = (
                        node.targets
                        if isinstance(node, ast.Assign)
                        else ([node.target] if isinstance(node, ast.AnnAssign) else [])
                    )
                    names += [t.id for t in targets if isinstance(t, ast.Name)]
        return names

    def xref_text(self, label: str) -> str:
        """``"Figure 2"`` / ``"Table 1"`` for a known label."""
        word = "Figure" if label.startswith("fig-") else "Table"
        return f"{word} {self.numbers[label]}"


def parse_qmd(path: str | Path) -> QmdDocument:
    """Parse and validate a ``.qmd`` file.

    Parameters
    ----------
    path
        The report.

    Returns
    -------
    QmdDocument

    Raises
    ------
    RenderError
        For anything outside the supported subset, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise RenderError(path, None, "no such file")
    lines = path.read_text(encoding="utf-8").splitlines()
    meta, body_start = _front_matter(path, lines)
    execute = meta.pop("execute", {})
    format_options = meta.pop("format", {})
    defaults = {**DEFAULT_OPTIONS, **execute}
    parts = _split(path, lines, body_start, defaults)
    numbers = _number(path, parts)
    doc = QmdDocument(path, meta, format_options, parts, numbers)
    for part in parts:
        if isinstance(part, MarkdownChunk):
            _check_markdown(doc, part)
    return doc


def _front_matter(path: Path, lines: list[str]) -> tuple[dict[str, Any], int]:
    if not lines or lines[0].strip() != "---":
        return {"lang": "en", "execute": {}, "format": _formats(path, 1, None, None)}, 0
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise RenderError(path, 1, "front matter opened with --- is never closed")
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        raise RenderError(path, line, f"front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise RenderError(path, 1, "front matter must be a YAML mapping")

    def line_of(key: str) -> int:
        pattern = re.compile(rf"^{re.escape(key)}\s*:")
        return next((i + 1 for i in range(1, end) if pattern.match(lines[i])), 1)

    if "params" in meta:
        raise RenderError(
            path,
            line_of("params"),
            "YAML 'params' are not supported: for Jupyter reports Quarto takes parameters from a "
            "code cell tagged 'parameters' (#| tags: [parameters]); put the defaults there",
        )
    for key in meta:
        if key not in FRONT_MATTER_KEYS:
            raise RenderError(
                path,
                line_of(str(key)),
                f"front-matter key {key!r} is not supported (supported: "
                f"{', '.join(sorted(FRONT_MATTER_KEYS))})",
            )
    out: dict[str, Any] = {}
    out["lang"] = "en"
    for key in ("title", "subtitle", "abstract", "lang"):
        if key in meta:
            if not isinstance(meta[key], str):
                raise RenderError(path, line_of(key), f"{key!r} must be text")
            out[key] = meta[key]
    if "author" in meta:
        out["author"] = _authors(path, line_of("author"), meta["author"])
    if "date" in meta:
        out["date"] = _date(path, line_of("date"), meta["date"])
    if "jupyter" in meta and meta["jupyter"] != "python3":
        raise RenderError(path, line_of("jupyter"), "only 'jupyter: python3' is supported")
    execute = meta.get("execute") or {}
    if not isinstance(execute, dict):
        raise RenderError(path, line_of("execute"), "'execute' must be a mapping")
    for key, value in execute.items():
        if key not in EXECUTE_OPTIONS:
            raise RenderError(
                path,
                line_of("execute"),
                f"execute option {key!r} is not supported (supported: "
                f"{', '.join(sorted(EXECUTE_OPTIONS))})",
            )
        _check_option_value(path, line_of("execute"), key, value)
    out["execute"] = execute
    out["format"] = _formats(path, line_of("format"), meta.get("format"), meta.get("toc"))
    if "toc" in meta and not isinstance(meta["toc"], bool):
        raise RenderError(path, line_of("toc"), "'toc' must be true or false")
    return out, end + 1


def _authors(path: Path, line: int, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and set(item) == {"name"}:
            names.append(item["name"])
        else:
            raise RenderError(path, line, "'author' must be a name or a list of names")
    return names


def _date(path: Path, line: int, value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if value == "today":
        return dt.date.today().isoformat()
    if isinstance(value, str) and value not in ("now", "last-modified"):
        return value
    raise RenderError(path, line, "'date' must be a date, text, or 'today'")


def _formats(path: Path, line: int, value: Any, toc: Any) -> dict[str, dict[str, Any]]:
    base = {"toc": bool(toc)} if toc is not None else {}
    options: dict[str, dict[str, Any]] = {name: dict(base) for name in FORMAT_KEYS}
    if value is None:
        return options
    if isinstance(value, str):
        value = {value: "default"}
    if not isinstance(value, dict):
        raise RenderError(path, line, "'format' must be a format name or a mapping")
    for name, opts in value.items():
        if name == "pdf":
            raise RenderError(
                path,
                line,
                "format 'pdf' means LaTeX to Quarto; use 'typst' (PDF through Typst), which "
                "both engines produce",
            )
        if name not in FORMAT_KEYS:
            raise RenderError(path, line, f"format {name!r} is not supported (html, docx, typst)")
        if opts in (None, "default"):
            continue
        if not isinstance(opts, dict) or not set(opts) <= FORMAT_OPTIONS:
            raise RenderError(
                path,
                line,
                f"format {name!r}: only these options are supported: {sorted(FORMAT_OPTIONS)}",
            )
        options[name].update(opts)
    return options


def _check_option_value(path: Path, line: int, key: str, value: Any) -> None:
    if key in ("echo", "eval", "include", "warning") and not isinstance(value, bool):
        raise RenderError(path, line, f"option {key!r} must be true or false, got {value!r}")
    if key == "output" and value not in (True, False, "asis"):
        raise RenderError(path, line, f"option 'output' must be true, false or asis, got {value!r}")
    if key in ("label", "fig-cap", "fig-alt", "tbl-cap") and not isinstance(value, str):
        raise RenderError(path, line, f"option {key!r} must be text")
    if key == "label" and not _LABEL.match(value):
        raise RenderError(path, line, f"label {value!r} must be letters, digits, - and _")
    if key == "tags" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise RenderError(path, line, "option 'tags' must be a list of names")


def _split(
    path: Path, lines: list[str], start: int, defaults: dict[str, Any]
) -> list[MarkdownChunk | CodeCell]:
    parts: list[MarkdownChunk | CodeCell] = []
    chunk: list[str] = []
    chunk_line = start + 1
    i = start
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            chunk.append(lines[i])
            i += 1
            continue
        fence, info = match["fence"], match["info"]
        close = _find_close(lines, i, fence)
        if close is None:
            raise RenderError(path, i + 1, "code fence is never closed")
        engine = _ENGINE.match(info)
        if info.startswith("{="):
            raise RenderError(
                path, i + 1, f"raw {info} blocks are format-specific and not supported"
            )
        if engine is None:  # display-only code block: keep as Markdown
            chunk.extend(lines[i : close + 1])
            i = close + 1
            continue
        if engine["engine"] != "python":
            raise RenderError(
                path, i + 1, f"only {{python}} cells are supported, not {{{engine['engine']}}}"
            )
        if engine["rest"].strip():
            raise RenderError(
                path,
                i + 1,
                "cell options go in '#| key: value' lines inside the cell, not in the braces",
            )
        if chunk:
            parts.append(MarkdownChunk(chunk, chunk_line))
        parts.append(_cell(path, lines, i, close, defaults))
        chunk, chunk_line = [], close + 2
        i = close + 1
    if chunk:
        parts.append(MarkdownChunk(chunk, chunk_line))
    return parts


def _find_close(lines: list[str], start: int, fence: str) -> int | None:
    closer = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    return next((j for j in range(start + 1, len(lines)) if closer.match(lines[j])), None)


def _cell(path: Path, lines: list[str], open_: int, close: int, defaults: dict) -> CodeCell:
    body = lines[open_ + 1 : close]
    option_lines = []
    for text in body:
        m = _OPTION.match(text)
        if not m:
            break
        option_lines.append(m["text"])
    n_opts = len(option_lines)
    for k, text in enumerate(body[n_opts:], start=n_opts):
        if _OPTION.match(text):
            raise RenderError(
                path, open_ + 2 + k, "cell options ('#|' lines) must come first in the cell"
            )
    try:
        options = yaml.safe_load("\n".join(option_lines)) if option_lines else {}
    except yaml.YAMLError as exc:
        raise RenderError(path, open_ + 2, f"cell options are not valid YAML: {exc}") from None
    if not isinstance(options, dict):
        raise RenderError(path, open_ + 2, "cell options must be 'key: value' lines")

    def line_of(key: str) -> int:
        return next(
            (open_ + 2 + k for k, t in enumerate(option_lines) if t.startswith(f"{key}:")),
            open_ + 2,
        )

    for key, value in options.items():
        if key not in CELL_OPTIONS:
            raise RenderError(
                path,
                line_of(key),
                f"cell option {key!r} is not supported (supported: "
                f"{', '.join(sorted(CELL_OPTIONS))})",
            )
        _check_option_value(path, line_of(key), key, value)
    merged = {**defaults, **options}
    label = merged.get("label", "")
    if label.startswith(_OTHER_XREF_PREFIXES):
        raise RenderError(
            path, line_of("label"), f"only fig- and tbl- labels can be referenced, not {label!r}"
        )
    kind = label.split("-", 1)[0] if label.startswith(("fig-", "tbl-")) else None
    for cap in ("fig-cap", "fig-alt", "tbl-cap"):
        if cap in merged and kind != cap[:3]:
            raise RenderError(path, line_of(cap), f"{cap!r} needs a cell label '{cap[:3]}-...'")
    required = {"fig": ("fig-cap", "fig-alt"), "tbl": ("tbl-cap",)}.get(kind or "", ())
    for cap in required:
        if cap not in merged:
            raise RenderError(path, line_of("label"), f"cell {label!r} needs '{cap}'")
    if kind and not (merged["eval"] and merged["include"] and merged["output"] is True):
        raise RenderError(
            path, line_of("label"), f"cell {label!r} is numbered, so it must run and be shown"
        )
    code = "\n".join(body[n_opts:])
    source = "\n".join(body)
    try:
        ast.parse(source)
    except SyntaxError as exc:
        line = open_ + 1 + (exc.lineno or 1)
        raise RenderError(path, line, f"Python syntax error in cell: {exc.msg}") from None
    return CodeCell(code, source, merged, open_ + 1, open_ + 2)


def _number(path: Path, parts: list[MarkdownChunk | CodeCell]) -> dict[str, int]:
    numbers: dict[str, int] = {}
    counts = dict.fromkeys(_XREF_KINDS, 0)
    parameter_cells = 0
    for cell in (p for p in parts if isinstance(p, CodeCell)):
        if cell.is_parameters:
            parameter_cells += 1
            if parameter_cells > 1 or not cell.options["eval"]:
                raise RenderError(
                    path, cell.line, "there must be at most one parameters cell, and it must run"
                )
        label = cell.label
        if label is None:
            continue
        if label in numbers:
            raise RenderError(path, cell.line, f"label {label!r} is used twice")
        kind = label.split("-", 1)[0]
        if kind in counts:
            counts[kind] += 1
            numbers[label] = counts[kind]
        else:
            numbers[label] = 0
    return {k: v for k, v in numbers.items() if v}


def _mask_inline_code(text: str) -> tuple[str, list[re.Match[str]]]:
    """Blank out inline code spans (keeping offsets); return them too."""
    spans = list(_INLINE_CODE.finditer(text))
    masked = text
    for m in spans:
        masked = masked[: m.start()] + " " * (m.end() - m.start()) + masked[m.end() :]
    return masked, spans


def _check_markdown(doc: QmdDocument, chunk: MarkdownChunk) -> None:
    path = doc.path
    in_fence: str | None = None
    for offset, text in enumerate(chunk.lines):
        line = chunk.line + offset
        fence = _FENCE.match(text)
        if in_fence is not None:
            if (
                fence
                and fence["fence"][0] == in_fence[0]
                and len(fence["fence"]) >= len(in_fence)
                and not fence["info"]
            ):
                in_fence = None
            continue
        if fence:
            in_fence = fence["fence"]
            continue
        masked, spans = _mask_inline_code(text)
        for span in spans:
            inline = _INLINE_ENGINE.match(span["body"])
            if inline is None:
                continue
            if inline["engine"] != "python":
                raise RenderError(
                    path, line, f"inline {{{inline['engine']}}} code is not supported"
                )
            try:
                ast.parse(inline["expr"], mode="eval")
            except SyntaxError:
                raise RenderError(
                    path, line, f"inline expression is not a Python expression: {inline['expr']!r}"
                ) from None
            chunk.inlines.append(InlineExpr(inline["expr"], line))
        if masked.lstrip().startswith(":::"):
            raise RenderError(
                path,
                line,
                "fenced divs (:::) such as callouts, panels or figure divs are not supported",
            )
        if "{{<" in masked:
            raise RenderError(path, line, "Quarto shortcodes {{< >}} are not supported")
        if _LABEL_ATTR.search(masked):
            raise RenderError(
                path,
                line,
                "cross-reference labels in Markdown ({#fig-...}, {#sec-...}) are not "
                "supported: figures and tables come from labelled code cells",
            )
        if re.search(r"\[-?@", masked):
            raise RenderError(
                path,
                line,
                "bracketed references ([@...], [-@...]) are not supported; write "
                "@fig-x or @tbl-x in running text",
            )
        for ref in _REF.finditer(masked):
            name = ref["name"]
            label = name[0].lower() + name[1:]
            if label.startswith(("fig-", "tbl-")):
                if label not in doc.numbers:
                    raise RenderError(
                        path, line, f"cross reference @{name}: no cell has label {label!r}"
                    )
            elif label.startswith(_OTHER_XREF_PREFIXES):
                raise RenderError(
                    path, line, f"@{name}: only figure and table references are supported"
                )
            else:
                raise RenderError(
                    path,
                    line,
                    f"@{name} looks like a citation, which is not supported; write "
                    "\\@ for a literal @",
                )


def substitute_markdown(doc: QmdDocument, chunk: MarkdownChunk) -> str:
    """Return the chunk's Markdown with inline values and cross references filled in.

    Inline expressions must have their ``value`` set (by executing them) first. A reference
    ``@fig-x`` becomes ``[Figure 1](#fig-x)``; ``@Fig-x`` (sentence start) reads the same.
    """
    out: list[str] = []
    inlines = iter(chunk.inlines)
    in_fence: str | None = None
    for text in chunk.lines:
        fence = _FENCE.match(text)
        if in_fence is not None:
            if (
                fence
                and fence["fence"][0] == in_fence[0]
                and len(fence["fence"]) >= len(in_fence)
                and not fence["info"]
            ):
                in_fence = None
            out.append(text)
            continue
        if fence:
            in_fence = fence["fence"]
            out.append(text)
            continue
        masked, spans = _mask_inline_code(text)
        edits: list[tuple[int, int, str]] = []
        for span in spans:
            if _INLINE_ENGINE.match(span["body"]):
                value = next(inlines).value
                if value is None:
                    raise RuntimeError("inline expression was not evaluated")
                edits.append((span.start(), span.end(), value))
        for ref in _REF.finditer(masked):
            name = ref["name"]
            label = name[0].lower() + name[1:]
            edits.append((ref.start(), ref.end(), f"[{doc.xref_text(label)}](#{label})"))
        for start, end, new in sorted(edits, reverse=True):
            text = text[:start] + new + text[end:]
        out.append(text)
    return "\n".join(out)
