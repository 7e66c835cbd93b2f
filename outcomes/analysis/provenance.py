"""Provenance: what produced a result.

Fingerprints written into every run manifest: the code (git commit and dirty flag of the
checkout, SHA-256 of every module of the installed ``outcomes`` package) and the environment
(Python, platform, versions of ``outcomes``' runtime dependencies); :func:`check_lock` says
whether ``requirements.lock`` is what ``uv pip compile`` gives today.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from outcomes.errors import InputError

#: How ``requirements.lock`` is made (README); :func:`check_lock` runs it again.
LOCK_COMMAND = (
    "uv",
    "pip",
    "compile",
    "pyproject.toml",
    "--extra",
    "reports",
    "--extra",
    "test",
    "--extra",
    "lint",
    "--python-version",
    "3.11",
)


# --------------------------------------------------------------------------------------------
# fingerprints
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_state(path: str | Path) -> dict[str, Any]:
    """The git commit of the checkout holding ``path`` and whether tracked files differ from it.

    Returns ``{"commit": None, "dirty": None, "note": ...}`` when ``path`` is not in a git
    checkout or git is not installed. Untracked files (``results/``, ``.nox/``) do not make
    the tree dirty; modified or staged tracked files do.
    """
    where = Path(path)
    where = where if where.is_dir() else where.parent
    git = shutil.which("git")
    if git is None:
        return {"commit": None, "dirty": None, "note": "git is not installed"}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [git, "-C", str(where), *args], capture_output=True, text=True, check=False
        )

    head = call("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None, "note": f"{where} is not in a git checkout"}
    status = call("status", "--porcelain", "--untracked-files=no")
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {
        "commit": head.stdout.strip(),
        "dirty": bool(changed),
        "changed_files": sorted(changed),
        "note": "",
    }


def code_fingerprint() -> dict[str, Any]:
    """Version and SHA-256 of every module of the ``outcomes`` package that is running.

    The hashes are of the installed files (site-packages in a nox session, the checkout in
    an editable install), so they say what code ran whatever the git state. ``package_sha256``
    hashes the sorted list of ``path sha256`` lines, one number for the whole package.
    """
    import outcomes

    root = Path(outcomes.__file__).parent
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".yaml", ".csv"):
            files[p.relative_to(root.parent).as_posix()] = sha256_file(p)
    listing = "".join(f"{k} {v}\n" for k, v in files.items())
    loaded = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(root.resolve()):
            loaded.add(Path(path).resolve().relative_to(root.resolve().parent).as_posix())
    return {
        "outcomes_version": outcomes.__version__,
        "package_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "files": files,
        "loaded": sorted(loaded & set(files)),
    }


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_packages(root: str = "outcomes") -> dict[str, str]:
    """Installed versions of ``root`` and every package it needs at run time (no extras).

    The closure of ``Requires-Dist`` (markers evaluated for this interpreter), by canonical
    name; a requirement that is not installed is listed as ``"not installed"``.
    """
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = [root]
    while todo:
        name = _canonical(todo.pop())
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            seen[name] = "not installed"
            continue
        seen[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return dict(sorted(seen.items()))


def environment_fingerprint() -> dict[str, Any]:
    """Python, platform and the versions of ``outcomes`` and its runtime dependencies."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": runtime_packages(),
    }


# --------------------------------------------------------------------------------------------
# lock file
# --------------------------------------------------------------------------------------------


def _lock_body(text: str) -> list[str]:
    """The lines of a lock file after its header comment (``uv`` writes its command there)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or not lines[i].strip()):
        i += 1
    return lines[i:]


def compare_lock(current: str, compiled: str) -> list[str]:
    """Unified-diff lines between a lock file and a fresh compile, header comments ignored."""
    import difflib

    return list(
        difflib.unified_diff(
            _lock_body(current),
            _lock_body(compiled),
            "requirements.lock (committed)",
            "requirements.lock (compiled now)",
            lineterm="",
        )
    )


def check_lock(
    lock: str | Path = "requirements.lock",
    project: str | Path = ".",
    *,
    uv: str | None = None,
    command: Sequence[str] = LOCK_COMMAND,
) -> list[str]:
    """Compile the lock file again with ``uv`` and return its differences (empty: current).

    The committed lock is copied to a temporary folder and compiled onto that copy, so ``uv``
    keeps its pins as preferences: the result differs only if ``pyproject.toml`` asks for
    something the pins no longer satisfy (or the pins were edited by hand).

    Raises
    ------
    InputError
        ``uv`` is not installed, or the compile fails.
    """
    lock, project = Path(lock), Path(project)
    if not lock.exists():
        raise InputError(f"{lock}: no such lock file")
    exe = uv or shutil.which("uv")
    if exe is None:
        raise InputError("checking the lock file needs uv (python3 -m pip install uv)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "requirements.lock"
        shutil.copy(lock, out)
        proc = subprocess.run(
            [exe, *command[1:], "-o", str(out), "--quiet"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise InputError(f"uv pip compile failed: {proc.stderr.strip()}")
        return compare_lock(lock.read_text(), out.read_text())
