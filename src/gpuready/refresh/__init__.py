"""Refresh: keeping the matrix current with the package index (`invoke matrix.refresh`).

Owns: the index client (`index`: PEP 691 pages, PEP 658 metadata, range reads, the HTTP cache),
facts read from wheels (`wheels`), the comparison with the matrix (`changes`), and writing the
matrix (`write`). This module runs a refresh and summarises what moved.

May import: `gpuready.model`, `gpuready.files`, `gpuready.errors`. Not the command line.

What cannot be read is never guessed: the release is written with a `review = "..."` line saying
what is missing, and the planner skips it until a person has filled it in and removed the line.
When the index cannot be reached nothing is changed; the matrix file is replaced atomically,
and only after the whole new matrix has passed the validator.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError, WorkFailed
from ..model import matrix as matrix_mod
from .changes import Report, compare
from .index import IndexClient, cache_root, check_index_url
from ..model.facts import python_range
from .write import MATRIX_FILE, _stale_temporaries, find_matrix_dir, insert_releases, write_matrix_file

__all__ = ["MATRIX_FILE", "Report", "cache_root", "check_index_url", "find_matrix_dir", "headline",
           "insert_releases", "refresh", "summary_markdown"]


def refresh(*, index_url: str, matrix_dir: Path | None, cache_dir: Path, timeout: float = 30,
            retries: int = 3, check: bool = False) -> Report:
    """Compare the matrix with the index; unless `check`, add the new releases to the matrix.

    `matrix_dir` None: the matrix shipped with gpuready, which can be checked, not written.
    """
    if matrix_dir is None and not check:
        raise UsageError("no matrix folder to update: run from the checkout or pass --matrix DIR")
    matrix = matrix_mod.load(matrix_dir)  # a malformed matrix stops here (exit 2), untouched
    label = str(matrix_dir / MATRIX_FILE) if matrix_dir else f"{matrix.source}/{MATRIX_FILE} (shipped)"
    with IndexClient(index_url, cache_dir=cache_dir, timeout=timeout, retries=retries) as client:
        report = compare(client, matrix, label)
        report.requests = client.requests
    report.before = report.after = headline(matrix)
    if check or not report.new:
        return report
    assert matrix_dir is not None
    path = matrix_dir / MATRIX_FILE
    try:
        before = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if matrix_mod.parse({n: before if n == MATRIX_FILE else (matrix_dir / n).read_text(encoding="utf-8")
                         for n in matrix_mod.FILES}, source=str(matrix_dir)) != matrix:
        raise WorkFailed(f"{path} changed while refresh ran; nothing was written, run it again")
    after = insert_releases(before, report.new)
    texts = {}
    for name in matrix_mod.FILES:
        file = matrix_dir / name
        texts[name] = after if name == MATRIX_FILE else file.read_text(encoding="utf-8")
    refreshed = matrix_mod.parse(texts, source=str(matrix_dir))  # it must validate before it is written
    _stale_temporaries(matrix_dir)
    write_matrix_file(path, after)
    report.written = True
    report.after = headline(refreshed)
    return report


# --------------------------------------------------------------------------- what moved


def headline(matrix: matrix_mod.Matrix) -> dict[str, str | None]:
    """The newest release the planner may choose, and what it asks of a host (Linux)."""
    release = next((r for r in matrix.releases if not r.review and r.gpu_platforms), None)
    if release is None:
        return {"tensorflow": None, "cuda": None, "cudnn": None, "driver_floor": None, "driver_ptx": None}
    pins = matrix.pins_for(release)
    return {
        "tensorflow": str(release.version),
        "cuda": release.cuda,
        "cudnn": pins.cudnn if pins else release.cudnn,
        "driver_floor": matrix.floor(release.cuda, windows=False),
        "driver_ptx": matrix.full_driver(release.cuda, windows=False),
    }


def summary_markdown(report: Report) -> str:
    """A pull request body: what moved, what is new, what needs a person."""
    before, after = report.before, report.after
    rows = [("TensorFlow (newest plannable)", "tensorflow"), ("CUDA (build)", "cuda"),
            ("cuDNN", "cudnn"), ("Linux driver floor (minor-version compatibility)", "driver_floor"),
            ("Linux driver for PTX JIT (the build's CUDA release)", "driver_ptx")]
    out = ["## Matrix refresh", "", "| | before | after |", "|---|---|---|"]
    for label, key in rows:
        old, now = before.get(key) or "–", after.get(key) or "–"
        out.append(f"| {label} | {old} | {now}{' (moved)' if old != now else ''} |")
    out.append("")
    if report.new:
        out.append(f"New on the index ({len(report.new)}):")
        for release in report.new:
            data = release.to_dict()
            wheel = release.wheels.get("tensorflow", {}).get("linux-64")
            line = (f"- **{data['tensorflow']}**: CUDA {data['cuda'] or '?'}, cuDNN {data['cudnn'] or '?'}, "
                    f"SASS {', '.join(data['sass'] or []) or '?'}, PTX {', '.join(data['ptx'] or []) or '?'}, "
                    f"pins {data['pins'] or '?'} ({data['and_cuda'] or '?'})"
                    + (f", Pythons {python_range(wheel.pythons)}, glibc {wheel.glibc}" if wheel else ""))
            out.append(line)
            if release.review:
                out.append(f"  - needs review (the planner skips it until the `review` line is removed): "
                           f"{'; '.join(release.review)}")
    else:
        out.append("The matrix knows every final TensorFlow release on the index.")
    if report.differences:
        out += ["", "Differences between the matrix and the index (not changed automatically):"]
        out += [f"- {d}" for d in report.differences]
    return "\n".join(out) + "\n"
