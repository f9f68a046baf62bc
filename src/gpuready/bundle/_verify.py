"""Check a bundle against its manifest with nothing but Python's standard library.

A bundle's `install.sh` runs the copy of this file at the bundle's top (`verify.py`) before
anything is installed, on a machine that has only `python3`; gpuready's `install --bundle` and
`setup --bundle` call the same `problems()`. So there is one reading of the manifest.

Every file of the bundle but the manifest is listed in it with its size and sha256: a file that
is missing, changed, or not listed (something added) is a problem, named by its path.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path, PurePosixPath

MANIFEST = "manifest.json"
SCHEMA = 1
CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(root: Path) -> dict:
    """The manifest as a dict; ValueError saying what is wrong with it."""
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{root}: no {MANIFEST}: this is not a gpuready bundle") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{root / MANIFEST}: unreadable ({error})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{root / MANIFEST}: not a schema {SCHEMA} gpuready bundle manifest")
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{root / MANIFEST}: it lists no files")
    for name, entry in files.items():
        parts = PurePosixPath(name).parts
        if not name or name.startswith("/") or ".." in parts or name == MANIFEST:
            raise ValueError(f"{root / MANIFEST}: {name!r} is not a path inside the bundle")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                or not isinstance(entry.get("size"), int):
            raise ValueError(f"{root / MANIFEST}: {name}: needs a sha256 and a size")
    return data


def problems(root: str | os.PathLike[str]) -> list[str]:
    """What is wrong with the bundle at `root` (empty when it is whole and as made)."""
    root = Path(root)
    try:
        files = read_manifest(root)["files"]
    except ValueError as error:
        return [str(error)]
    found: list[str] = []
    for name, entry in sorted(files.items()):
        path = root / name
        if not path.is_file():
            found.append(f"{name}: missing from the bundle")
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            found.append(f"{name}: {size} bytes, the manifest says {entry['size']} (changed or damaged)")
        elif _sha256(path) != entry["sha256"]:
            found.append(f"{name}: its sha256 differs from the manifest's (changed or damaged)")
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and name != MANIFEST and name not in files and "__pycache__" not in path.parts:
            found.append(f"{name}: not in the manifest (added to the bundle)")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    found = problems(root)
    for problem in found:
        print(f"bundle: {problem}", file=sys.stderr)
    if found:
        print(f"bundle: {root} is not as it was made; nothing was installed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
