"""Environment folders: ``envs/<env-name>/`` holds a plan's inputs and its lock files.

    inputs.toml        what to lock: TensorFlow, Python, platform, CUDA/cuDNN, flavor, the
                       requirement lines and conda specs, the virtual packages it targets
                       (and gpuready's version, recorded but not hashed)
    lock-state.toml    what was locked: the inputs' sha256 and every lock file's sha256
    pip flavor:        requirements.in, requirements.txt (the lock), pylock.toml
    conda flavor:      environment.yml, virtual-packages.yml, conda-lock.yml (the lock)

The folder is current when its inputs hash to what lock-state.toml recorded and every
lock file still has its recorded sha256. Writes are atomic per file (a temporary file in
the folder, then ``os.replace``), and nothing is written until the lock has succeeded, so
a failed lock leaves the previous files as they were.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import tomli_w
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..files import sha256_bytes, write_atomic
from .content import Problem, check_conda_lock, check_pylock, check_requirement_inputs, check_requirements_txt
from ..model.inputs import INPUTS_FILE as INPUTS
from ..model.inputs import SCHEMA, Inputs, InputsError, inputs_from_plan

STATE = "lock-state.toml"
LOCK_FILES = {
    "pip": ("requirements.in", "requirements.txt", "pylock.toml"),
    "conda": ("environment.yml", "virtual-packages.yml", "conda-lock.yml"),
}
MAIN_LOCK = {"pip": "requirements.txt", "conda": "conda-lock.yml"}

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;#]+)")

_STATE_HEADER = """\
# Written by `invoke lock`; `invoke lock --check` compares the folder against it. Do not edit.

"""


@dataclass(frozen=True)
class Cutoff:
    """The upload-time cut-off a pip lock resolved with (`uv pip compile --exclude-newer`), and the
    later ones of packages moved by `--upgrade-package`. Recorded in lock-state.toml, not in the
    inputs' hash: the same inputs with the same cut-off resolve to the same bytes on any day."""

    exclude_newer: str  # RFC 3339, UTC, e.g. "2026-12-03T06:14:24Z"
    packages: tuple[tuple[str, str], ...] = ()  # (canonical name, RFC 3339), sorted

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Cutoff | None:
        value = state.get("exclude_newer")
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            return None
        packages = state.get("exclude_newer_package") or {}
        if not isinstance(packages, dict):
            packages = {}
        return cls(value, tuple(sorted((str(k), str(v)) for k, v in packages.items()
                                       if isinstance(v, str) and _RFC3339.fullmatch(v))))

    def to_state(self) -> dict[str, Any]:
        data: dict[str, Any] = {"exclude_newer": self.exclude_newer}
        if self.packages:
            data["exclude_newer_package"] = dict(self.packages)
        return data

    def with_packages(self, names: Iterable[str], when: str) -> Cutoff:
        merged = dict(self.packages)
        merged.update({canonicalize_name(n): when for n in names})
        return Cutoff(self.exclude_newer, tuple(sorted(merged.items())))


@dataclass(frozen=True)
class FolderCheck:
    """What `EnvFolder.check` found: ok, the reason, the file at fault, whether relocking is the fix."""

    ok: bool
    reason: str
    relock_ok: bool = False
    file: str | None = None
    problems: tuple[Problem, ...] = ()


class EnvFolder:
    """One ``envs/<env-name>/`` folder."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.changed: tuple[str, ...] = ()  # the files the last lock rewrote
        self.seconds: float | None = None  # how long the last lock took
        self.moves: tuple[str, ...] = ()  # what the last lock moved (`gpuready.lock.moves`)

    def __repr__(self) -> str:
        return f"EnvFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def inputs_path(self) -> Path:
        return self.path / INPUTS

    @property
    def state_path(self) -> Path:
        return self.path / STATE

    @property
    def inputs(self) -> Inputs:
        """The folder's inputs; `InputsError` (exit 2) when missing or malformed."""
        where = f"envs/{self.name}/{INPUTS}"
        try:
            text = self.inputs_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputsError(f"{where} is missing: {self.path} is not an environment folder "
                              "(make one with `invoke lock` and plan flags)") from None
        except (OSError, UnicodeDecodeError) as error:
            raise InputsError(f"{where} cannot be read: {error}") from None
        inputs = Inputs.from_toml(text, where)
        if inputs.env != self.name:
            raise InputsError(f"{where}: env = {inputs.env!r}, but the folder is named {self.name!r}")
        return inputs

    @property
    def flavor(self) -> str:
        try:
            return self.inputs.flavor
        except InputsError:
            return next((f for f, lock in MAIN_LOCK.items() if (self.path / lock).exists()), "pip")

    @property
    def lock_file(self) -> Path:
        """The main lock: requirements.txt (pip) or conda-lock.yml (conda)."""
        return self.path / MAIN_LOCK[self.flavor]

    def lock_sha256(self) -> str:
        return sha256_bytes(self.lock_file.read_bytes())

    def state(self) -> dict[str, Any] | None:
        """lock-state.toml as a dict, or None when it is missing or unreadable."""
        try:
            data = tomllib.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        if not isinstance(data.get("input_sha256"), str) or not isinstance(data.get("files"), dict):
            return None
        return data

    def locked_packages(self) -> dict[str, str]:
        """{canonical name: version} of every package the lock installs on its platform."""
        text = self.lock_file.read_text(encoding="utf-8")
        if self.flavor == "pip":
            return _pins(text.splitlines())
        import yaml  # conda-lock's dependency; imported only here

        platform = self.inputs.platform
        packages = (yaml.safe_load(text) or {}).get("package") or []
        return {canonicalize_name(p["name"]): str(p["version"])
                for p in packages if p.get("platform") == platform}

    def is_current(self) -> tuple[bool, str]:
        """(True, "current") or (False, why the lock no longer matches its inputs or fails its check)."""
        result = self.check()
        return result.ok, result.reason

    def cutoff(self) -> Cutoff | None:
        """The upload-time cut-off the last lock resolved with; None for a lock made before
        gpuready recorded one (or against an index that gives no upload times)."""
        state = self.state()
        return Cutoff.from_state(state) if state is not None else None

    def check(self) -> FolderCheck:
        """Is the folder current and is its lock fit to install? Reads the folder only (no network).

        `relock_ok` says whether locking the folder again is the expected next step (no lock yet,
        or the inputs changed since it was made) rather than throwing away a lock whose files
        were changed (`setup` refuses those: they are for a person to look at)."""
        if not self.inputs_path.exists():
            return FolderCheck(False, f"no {INPUTS}: not an environment folder, or its inputs were removed",
                               relock_ok=True)
        try:
            inputs = self.inputs
        except InputsError as error:
            return FolderCheck(False, error.message, relock_ok=True)
        lock_files = LOCK_FILES[inputs.flavor]
        state = self.state()
        if state is None:
            present = [name for name in lock_files if (self.path / name).exists()]
            if not present:
                return FolderCheck(False, f"no readable {STATE}: never locked", relock_ok=True)
            return FolderCheck(False, f"no readable {STATE} beside {', '.join(present)}: the lock was "
                                      "interrupted, or the file was removed or edited", file=STATE)
        if state.get("schema") != SCHEMA:
            return FolderCheck(False, f"{STATE} is from lock schema {state.get('schema')}, this gpuready "
                                      f"writes {SCHEMA}", relock_ok=True)
        if state["input_sha256"] != inputs.digest():
            return FolderCheck(False, f"{INPUTS} changed since the lock (its hash no longer matches {STATE})",
                               relock_ok=True)
        recorded = state["files"]
        for name in lock_files:
            path = self.path / name
            if not path.exists():
                return FolderCheck(False, f"{name} is missing", file=name)
            if recorded.get(name) != sha256_bytes(path.read_bytes()):
                return FolderCheck(False, f"{name} was changed after locking (its sha256 no longer matches "
                                          f"{STATE})", file=name)
        problems = self.content_problems(inputs)
        if problems:
            return FolderCheck(False, "; ".join(str(p) for p in problems), file=problems[0].file,
                               problems=tuple(problems))
        locked = self.locked_packages()
        wanted = [(line, *_wanted_pip(line)) for line in inputs.requirements]
        wanted += [(spec, *_wanted_conda(spec)) for spec in inputs.conda_packages]
        for line, name, accepts in wanted:
            if name is None:
                continue
            if name not in locked:
                return FolderCheck(False, f"{self.lock_file.name} does not install {name}, which the inputs "
                                          "ask for", file=self.lock_file.name)
            if not accepts(locked[name]):
                return FolderCheck(False, f"{self.lock_file.name} has {name} {locked[name]}, but the inputs "
                                          f"ask for {line}", file=self.lock_file.name)
        return FolderCheck(True, "current")

    def content_problems(self, inputs: Inputs | None = None) -> list[Problem]:
        """What the lock files say that a lock must not (`gpuready.lock.content`), file and line."""
        inputs = inputs or self.inputs
        problems = check_requirement_inputs(inputs.requirements, INPUTS)
        if inputs.flavor == "pip":
            from .uv import render_requirements_in

            if (self.path / "requirements.in").read_text(encoding="utf-8") != render_requirements_in(inputs):
                problems.append(Problem("requirements.in", None, f"differs from what {INPUTS} makes "
                                                                 "(requirements.in is written by `invoke lock`)"))
            try:
                pins, found = check_requirements_txt((self.path / "requirements.txt").read_text(encoding="utf-8"))
                problems += found
                problems += check_pylock((self.path / "pylock.toml").read_text(encoding="utf-8"), pins)
            except UnicodeDecodeError as error:
                problems.append(Problem(MAIN_LOCK["pip"], None, f"not UTF-8 text: {error}"))
            return problems
        import yaml  # conda-lock's dependency; imported only here

        try:
            data = yaml.safe_load((self.path / "conda-lock.yml").read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            return problems + [Problem("conda-lock.yml", None, f"not readable YAML: {error}")]
        return problems + check_conda_lock(data, inputs.conda_channel)

    def write(self, inputs: Inputs, files: Mapping[str, bytes], cutoff: Cutoff | None = None) -> list[str]:
        """Write the inputs, the lock files and lock-state.toml; return the names that changed.

        Every file goes through a temporary file and `os.replace`; lock-state.toml comes last,
        so an interrupted write reads as stale, never as current.
        """
        expected = set(LOCK_FILES[inputs.flavor])
        if set(files) != expected:
            raise ValueError(f"lock files {sorted(files)} != {sorted(expected)}")
        self.path.mkdir(parents=True, exist_ok=True)
        changed = []
        if write_atomic(self.inputs_path, inputs.to_toml().encode()):
            changed.append(INPUTS)
        for name in LOCK_FILES[inputs.flavor]:
            if write_atomic(self.path / name, files[name]):
                changed.append(name)
        state = {
            "schema": SCHEMA,
            "env": inputs.env,
            "flavor": inputs.flavor,
            "input_sha256": inputs.digest(),
            "files": {name: sha256_bytes(files[name]) for name in LOCK_FILES[inputs.flavor]},
        }
        if cutoff is not None:
            state.update(cutoff.to_state())
        if write_atomic(self.state_path, (_STATE_HEADER + tomli_w.dumps(state)).encode()):
            changed.append(STATE)
        return changed


def _wanted_pip(line: str) -> tuple[str | None, Callable[[str], bool]]:
    """(canonical name, version test) of a requirement line; no name when its marker may not apply."""
    requirement = Requirement(line)
    if requirement.marker is not None:
        return None, bool
    return canonicalize_name(requirement.name), lambda v: requirement.specifier.contains(v, prereleases=True)


def _wanted_conda(spec: str) -> tuple[str | None, Callable[[str], bool]]:
    """The same for a conda spec `name[=version[=build]]`: `python=3.11` takes 3.11.x,
    `tensorflow=2.19.1=cuda*` exactly 2.19.1. Other spec forms are left to conda."""
    match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:=([0-9][0-9A-Za-z.]*)(=\S+)?)?", spec.strip())
    if not match:
        return None, bool
    name, version, build = match.groups()
    if not version:
        return canonicalize_name(name), bool
    if build:
        return canonicalize_name(name), lambda v: v == version
    return canonicalize_name(name), lambda v: v == version or v.startswith(version + ".")


def _pins(lines: Iterable[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = _PIN.match(line)
        if match and not line.lstrip().startswith("#"):
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def env_folders(envs_dir: str | os.PathLike[str]) -> list[EnvFolder]:
    """Every folder under envs/ (hidden ones left out), sorted by name."""
    root = Path(envs_dir)
    if not root.is_dir():
        return []
    return [EnvFolder(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def find_env(envs_dir: str | os.PathLike[str], plan: Any) -> EnvFolder | None:
    """The folder whose inputs equal what the plan asks, or None.

    Inputs name their folder (`env`), so only envs/<plan.env> can match."""
    folder = EnvFolder(Path(envs_dir) / plan.env)
    try:
        return folder if folder.inputs == inputs_from_plan(plan) else None
    except InputsError:
        return None
