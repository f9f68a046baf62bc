"""What a lock file may say: the content check behind `invoke lock --check` and `setup`.

lock-state.toml proves only that the files are the ones the last lock wrote; anyone who edits a
lock can re-hash lock-state.toml too. These checks read what the files say instead, so an edit
that an installer would act on is refused whatever lock-state.toml records:

- requirements.txt: every requirement pinned with `==` and carrying sha256 hashes; no option but
  the `--only-binary :all:` gpuready writes (no index, find-links, editable, include or
  constraint lines), no direct URL, VCS or path requirement, no package twice;
- pylock.toml: the same packages, versions and hashes as requirements.txt, every wheel hashed;
- conda-lock.yml: every package with a url and a hash, no channel but the inputs' one.

Pure functions over text: no network, no files written. Each problem names its file and line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any, Iterator

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

_HASH = re.compile(r"--hash=(\S+)")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_ALLOWED_OPTIONS = ("--only-binary :all:", "--only-binary=:all:")
_OPTION_WORDS = {
    "-i": "an index line (-i)", "--index-url": "an index line (--index-url)",
    "--extra-index-url": "an extra index line (--extra-index-url)", "--no-index": "a --no-index line",
    "-f": "a find-links line (-f)", "--find-links": "a find-links line (--find-links)",
    "-e": "an editable requirement (-e)", "--editable": "an editable requirement (--editable)",
    "-r": "an include (-r)", "--requirement": "an include (--requirement)",
    "-c": "a constraints include (-c)", "--constraint": "a constraints include (--constraint)",
    "--trusted-host": "a --trusted-host line",
}
_URLISH = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git\+|hg\+|svn\+|bzr\+|\.{0,2}/|~)", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One thing a lock file must not say: the file, the line (1-based, when there is one), why."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: frozenset[str]  # "sha256:<hex>"
    line: int


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each logical line: continuations joined, comments dropped."""
    start, parts = 0, []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw
        if line.lstrip().startswith("#"):
            line = ""
        else:
            line = re.sub(r"(^|\s)#.*$", "", line)
        if not parts:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        joined = " ".join(p.strip() for p in parts).strip()
        parts = []
        if joined:
            yield start, joined


def check_requirements_txt(text: str, file: str = "requirements.txt") -> tuple[dict[str, Pin], list[Problem]]:
    """The pins of a pip lock and every problem with it."""
    pins: dict[str, Pin] = {}
    problems: list[Problem] = []

    def bad(line: int, message: str) -> None:
        problems.append(Problem(file, line, message))

    for number, line in _logical_lines(text):
        if line.startswith("-"):
            if line in _ALLOWED_OPTIONS:
                continue
            word = re.split(r"[\s=]", line, maxsplit=1)[0]
            what = _OPTION_WORDS.get(word, f"the option {word}")
            bad(number, f"{what}: a lock names no index, link, include or option but "
                        "`--only-binary :all:` (installs would act on it)")
            continue
        hashes = _HASH.findall(line)
        spec = _HASH.sub("", line).strip()
        if _URLISH.match(spec):
            bad(number, f"a URL, VCS or path requirement ({spec.split()[0]}): a lock pins index packages only")
            continue
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as error:
            bad(number, f"not a requirement: {error}")
            continue
        name = canonicalize_name(requirement.name)
        if requirement.url:
            bad(number, f"{name} is a direct URL or VCS reference ({requirement.url}): a lock pins index "
                        "packages only")
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            bad(number, f"{name} is not pinned with == to one version ({requirement.specifier or 'no version'})")
            continue
        if not hashes:
            bad(number, f"{name}=={specifiers[0].version} has no --hash (every pin carries sha256 hashes)")
            continue
        wrong = [h for h in hashes if not _SHA256.fullmatch(h)]
        if wrong:
            bad(number, f"{name}: {wrong[0]} is not a sha256 hash (sha256:<64 hex digits>)")
            continue
        if name in pins:
            bad(number, f"{name} is pinned twice (first on line {pins[name].line})")
            continue
        pins[name] = Pin(name, specifiers[0].version, frozenset(hashes), number)
    if not pins and not problems:
        problems.append(Problem(file, None, "pins no package"))
    problems += _unasked(text, pins, file)
    return pins, problems


def _unasked(text: str, pins: dict[str, Pin], file: str) -> list[Problem]:
    """Pins that nothing asks for: uv writes under each pin `# via` the packages that require it
    (or `-r requirements.in`); a pin with none, or via a package the lock does not have, was not
    part of the resolution."""
    via: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        if raw and not raw[0].isspace() and not raw.startswith(("#", "-")):
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)", raw)
            current = canonicalize_name(match.group(1)) if match else None
            if current is not None:
                via.setdefault(current, [])
        elif current is not None and raw.strip().startswith("#"):
            body = raw.strip()[1:].strip()
            body = body[3:].strip() if body.startswith("via") else body
            if body:
                via[current].append(body)
    problems = []
    for name, pin in pins.items():
        askers = via.get(name, [])
        known = [a for a in askers if a.startswith("-r ") or canonicalize_name(a.split("[")[0]) in pins]
        if not known:
            said = f" (via {', '.join(askers)}, not in this lock)" if askers else ""
            problems.append(Problem(file, pin.line, f"{name}=={pin.version}: nothing in the lock asks for it"
                                                    f"{said}; uv writes `# via` under every pin it resolved"))
    return problems


def _toml_line(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return None


def check_pylock(text: str, pins: dict[str, Pin], file: str = "pylock.toml") -> list[Problem]:
    """pylock.toml says what requirements.txt says: the same names, versions and hashes."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return [Problem(file, None, f"not valid TOML: {error}")]
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    packages = data.get("packages")
    if not isinstance(packages, list):
        return [Problem(file, None, "has no [[packages]]")]
    for package in packages:
        if not isinstance(package, dict):
            problems.append(Problem(file, None, "a [[packages]] entry is not a table"))
            continue
        name = canonicalize_name(str(package.get("name", "")))
        version = str(package.get("version", ""))
        line = _toml_line(text, f'name = "{package.get("name")}"')
        if name in seen:
            problems.append(Problem(file, line, f"{name} appears twice"))
            continue
        seen[name] = version
        pin = pins.get(name)
        if pin is None:
            problems.append(Problem(file, line, f"{name} {version} is not in requirements.txt"))
            continue
        if version != pin.version:
            problems.append(Problem(file, line, f"{name} is {version} here but {pin.version} in "
                                                f"requirements.txt (line {pin.line})"))
            continue
        for key in ("sdist", "archive", "vcs", "directory"):
            if key in package:
                problems.append(Problem(file, line, f"{name} has a {key} entry: a lock installs wheels only"))
        wheels = package.get("wheels")
        if not isinstance(wheels, list) or not wheels:
            problems.append(Problem(file, line, f"{name} {version} lists no wheel"))
            continue
        for wheel in wheels:
            sha = (wheel.get("hashes") or {}).get("sha256") if isinstance(wheel, dict) else None
            url = wheel.get("url") if isinstance(wheel, dict) else None
            if not url or not isinstance(sha, str):
                problems.append(Problem(file, line, f"{name} {version}: a wheel without url and sha256"))
            elif f"sha256:{sha}" not in pin.hashes:
                problems.append(Problem(file, _toml_line(text, sha) or line,
                                        f"{name} {version}: the wheel {url.rsplit('/', 1)[-1]} has a sha256 "
                                        f"that requirements.txt (line {pin.line}) does not list"))
    for name in sorted(set(pins) - set(seen), key=lambda n: pins[n].line):
        problems.append(Problem("requirements.txt", pins[name].line,
                                f"{name}=={pins[name].version} is not in {file} (the two files describe one "
                                "resolution)"))
    return problems


def check_conda_lock(data: Any, channel: str | None, file: str = "conda-lock.yml") -> list[Problem]:
    """Every package with a url and a hash; no channel but the inputs' one."""
    if not isinstance(data, dict):
        return [Problem(file, None, "not a conda-lock file")]
    problems: list[Problem] = []
    channels = (data.get("metadata") or {}).get("channels") or []
    for entry in channels:
        url = entry.get("url") if isinstance(entry, dict) else entry
        if url != channel:
            problems.append(Problem(file, None, f"channel {url!r}: the inputs name only {channel!r}"))
    packages = data.get("package")
    if not isinstance(packages, list) or not packages:
        return problems + [Problem(file, None, "lists no package")]
    for package in packages:
        if not isinstance(package, dict):
            problems.append(Problem(file, None, "a package entry is not a mapping"))
            continue
        name = package.get("name", "?")
        hashes = package.get("hash") or {}
        if not package.get("url"):
            problems.append(Problem(file, None, f"{name} {package.get('version', '')} has no url"))
        ok = isinstance(hashes, dict) and (
            hashes.get("sha256") or (package.get("manager") == "conda" and hashes.get("md5")))
        if not ok:
            problems.append(Problem(file, None, f"{name} {package.get('version', '')} has no hash"))
    return problems


def check_requirement_inputs(lines: tuple[str, ...], file: str = "inputs.toml") -> list[Problem]:
    """Inputs that would make the lock name something other than an index package."""
    problems = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue  # Inputs validation says so already
        if requirement.url:
            problems.append(Problem(file, None, f"requirement {line!r} is a direct URL or VCS reference: "
                                                "locks pin index packages only"))
    return problems
