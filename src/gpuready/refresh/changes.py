"""What the index knows that the matrix does not: new releases described from their wheels,
and differences in the releases the matrix already has. Nothing is written here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ..model import matrix as matrix_mod
from ..model.facts import PLATFORMS, python_range
from .index import IndexClient, IndexFile, IndexProblem, NotReadable
from .wheels import BuildFacts, WheelGroup, and_cuda_requirements, index_releases, read_build, read_metadata

DISTS = matrix_mod.DISTS  # ("tensorflow", "tensorflow-cpu")


@dataclass
class NewRelease:
    version: Version
    wheels: dict[str, dict[str, WheelGroup]]  # dist -> platform -> wheels
    build: BuildFacts | None = None
    build_source: str | None = None
    gpu_platforms: list[str] = field(default_factory=list)
    and_cuda: str | None = None  # "none" | "exact" | "range"
    extra: tuple[str, ...] = ()
    pins: str | None = None
    pin_overrides: tuple[str, ...] = ()
    review: list[str] = field(default_factory=list)

    @property
    def cuda(self) -> str | None:
        return self.build.cuda if self.build and self.build.is_cuda_build else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensorflow": str(self.version),
            "cuda": self.cuda,
            "cudnn": self.build.cudnn if self.build else None,
            "sass": list(self.build.sass) if self.build else None,
            "ptx": list(self.build.ptx) if self.build else None,
            "gpu_platforms": self.gpu_platforms,
            "build_info_from": self.build_source,
            "and_cuda": self.and_cuda,
            "and_cuda_requirements": list(self.extra),
            "pins": self.pins,
            "pin_overrides": list(self.pin_overrides),
            "wheels": {dist: {plat: {"pythons": list(g.pythons), "glibc": g.glibc,
                                     "requires_python": g.requires_python}
                              for plat, g in plats.items()}
                       for dist, plats in self.wheels.items()},
            "review": "; ".join(self.review) or None,
        }

    def render(self) -> str:
        """The release as a TOML block in tensorflow.toml's format (written by tomlkit)."""
        table = tomlkit.table()
        if self.review:
            table.add("review", "; ".join(self.review))
        build = self.build
        if build is not None and build.is_cuda_build:
            table.add("cuda", build.cuda or "")
            table.add("cudnn", build.cudnn or "")
            table.add("sass", list(build.sass))
            table.add("ptx", list(build.ptx))
        if build is not None:
            table.add("gpu_platforms", list(self.gpu_platforms))
        if self.pins is not None:
            table.add("pins", self.pins)
        if self.pin_overrides:
            table.add("pin_overrides", list(self.pin_overrides))
        if self.and_cuda is not None:
            table.add("and_cuda", self.and_cuda)
        for dist in DISTS:
            for platform, group in self.wheels.get(dist, {}).items():
                wheel = tomlkit.inline_table()
                wheel["pythons"] = list(group.pythons)
                if group.glibc:
                    wheel["glibc"] = group.glibc
                table.add(tomlkit.key(["wheels", dist, platform]), wheel)
        releases = tomlkit.table(is_super_table=True)
        releases.add(str(self.version), table)
        document = tomlkit.document()
        source = f"; build facts from {self.build_source}" if self.build_source else ""
        document.add(tomlkit.comment(f"Added by `invoke matrix.refresh`{source}."))
        document.add("releases", releases)
        return tomlkit.dumps(document)


def _describe_new(client: IndexClient, version: Version, wheels: dict[str, dict[str, WheelGroup]],
                  matrix: matrix_mod.Matrix) -> NewRelease:
    new = NewRelease(version, wheels)
    groups = wheels.get("tensorflow", {})
    main = groups.get("linux-64")
    if main is None:
        new.review.append("no Linux x86_64 tensorflow wheel: build facts and the and-cuda extra "
                          "could not be read; fill cuda, cudnn, sass, ptx, gpu_platforms, pins, and_cuda")
        return new
    # Build facts, from each platform's tensorflow wheel.
    unknown = []
    for platform, group in groups.items():
        file = group.newest_file()
        try:
            facts = read_build(client, file)
        except NotReadable as why:
            unknown.append(platform)
            if platform == "linux-64":
                new.review.append(f"build facts not read from {file.filename} ({why}): fill cuda, cudnn, "
                                  "sass, ptx from its build_info.py")
            continue
        if platform == "linux-64":
            new.build, new.build_source = facts, file.filename
        if facts.is_cuda_build:
            new.gpu_platforms.append(platform)
    if unknown:
        new.review.append(f"gpu_platforms: whether the {', '.join(unknown)} wheel is a CUDA build could "
                          "not be read; check its build_info.py")
    if new.build is not None and not new.build.is_cuda_build:
        new.review.append("the Linux x86_64 wheel is not a CUDA build (is_cuda_build False): decide how "
                          "the matrix should treat a CPU-only release")
    elif new.build is not None and new.cuda is not None:
        full = Version(new.cuda) if len(Version(new.cuda).release) == 3 else Version(f"{new.cuda}.0")
        if full not in matrix.cuda_releases:
            new.review.append(f"CUDA {new.cuda} has no row in cuda.toml: add its Table-3 drivers")
    # The and-cuda extra, from the same wheel's core metadata.
    python = main.pythons[-1]
    try:
        metadata = read_metadata(client, main.newest_file())
    except NotReadable as why:
        new.review.append(f"the and-cuda extra could not be read ({why}): fill pins and and_cuda")
        return new
    extra = and_cuda_requirements(metadata, python)
    _derive_pins(new, extra, matrix)
    return new


def _derive_pins(new: NewRelease, extra: tuple[Requirement, ...] | None, matrix: matrix_mod.Matrix) -> None:
    """Name the pin set the and-cuda extra matches, from the facts alone; else ask for review."""
    if extra is None:
        new.and_cuda, new.pins = "none", ""
        new.review.append("no and-cuda extra: choose a CUDA wheel set (pins) by hand, or confirm none")
        return
    new.extra = tuple(str(r) for r in extra)
    trt = [r for r in extra if canonicalize_name(r.name).startswith("tensorrt")]
    if trt:
        new.review.append(f"the extra pins {', '.join(str(r) for r in trt)}: check on which Pythons it "
                          "resolves and set extra_unresolvable")
    reqs = {canonicalize_name(r.name): r for r in extra if r not in trt}
    exact = all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in reqs.values())
    new.and_cuda = "exact" if exact else "range"
    build_cuda = Version(new.cuda) if new.cuda else None
    best: tuple[int, str, list[Requirement]] | None = None
    for name, pin_set in sorted(matrix.pin_sets.items()):
        pinned = {canonicalize_name(Requirement(p).name): Requirement(p) for p in pin_set.packages}
        if set(pinned) != set(reqs):
            continue
        if build_cuda is not None and Version(pin_set.cuda).release[:2] != build_cuda.release[:2]:
            continue
        outside = [reqs[n] for n in sorted(reqs)
                   if not reqs[n].specifier.contains(next(iter(pinned[n].specifier)).version, prereleases=True)]
        if best is None or len(outside) < best[0]:
            best = (len(outside), name, outside)
    if best is None:
        new.pins = ""
        new.review.append(f"no pin set in cuda-wheels.toml has the extra's packages for CUDA "
                          f"{new.cuda or '?'}: add one (the extra asks {', '.join(new.extra)})")
        return
    _, name, outside = best
    new.pins = name
    overrides = []
    for req in outside:
        pin = _lower_bound(req)
        if pin is None:
            new.review.append(f"{req}: the {name} set's version is outside this and no single version "
                              "follows from it; add a pin_overrides entry")
            continue
        overrides.append(f"{canonicalize_name(req.name)}=={pin}")
        if not exact:
            new.review.append(f"{req.name}: the {name} set's version is outside {req.specifier}; "
                              f"pinned to its lower bound {pin}: confirm it is the tested version")
    new.pin_overrides = tuple(overrides)


def _lower_bound(req: Requirement) -> str | None:
    for spec in req.specifier:
        if spec.operator in ("==", ">=") and "*" not in spec.version:
            return spec.version
    return None


@dataclass
class Report:
    index: str
    matrix_file: str
    known: list[str]  # matrix releases, oldest first
    on_index: list[str]  # final releases in scope on the index, oldest first
    new: list[NewRelease]
    differences: list[str]
    ignored_prereleases: list[str]
    written: bool = False
    measured: list[str] = field(default_factory=list)  # releases whose GPU code was measured
    requests: int = 0
    seconds: float = 0.0
    before: dict[str, str | None] = field(default_factory=dict)  # headline() before and after
    after: dict[str, str | None] = field(default_factory=dict)

    @property
    def current(self) -> bool:
        return not self.new

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "matrix": self.matrix_file,
            "current": self.current,
            "known": self.known,
            "on_index": self.on_index,
            "new": [n.to_dict() for n in self.new],
            "differences": self.differences,
            "ignored_prereleases": self.ignored_prereleases,
            "written": self.written,
            "measured": self.measured,
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "before": self.before,
            "after": self.after,
        }


def _differences(version: Version, release: matrix_mod.Release,
                 on_index: dict[str, dict[str, WheelGroup]]) -> list[str]:
    out = []
    for dist in DISTS:
        have = release.wheels.get(dist, {})
        index = on_index.get(dist, {})
        for platform in PLATFORMS:
            mine, theirs = have.get(platform), index.get(platform)
            where = f"{version}: {dist} {platform}"
            if mine and not theirs:
                out.append(f"{where}: in the matrix (Pythons {python_range(mine.pythons)}), not on the index")
            elif theirs and not mine:
                out.append(f"{where}: on the index (Pythons {python_range(theirs.pythons)}), not in the matrix")
            elif mine and theirs:
                if tuple(mine.pythons) != theirs.pythons:
                    out.append(f"{where}: Pythons {python_range(mine.pythons)} in the matrix, "
                               f"{', '.join(theirs.pythons)} on the index")
                if mine.glibc and theirs.glibc and mine.glibc != theirs.glibc:
                    out.append(f"{where}: glibc {mine.glibc} in the matrix, {theirs.glibc} on the index")
    return out


def compare(client: IndexClient, matrix: matrix_mod.Matrix, matrix_file: str) -> Report:
    """What the index knows that the matrix does not (nothing is written)."""
    start = time.monotonic()
    listings: dict[str, dict[Version, dict[str, WheelGroup]]] = {}
    prereleases: set[str] = set()
    for dist in DISTS:
        files = client.files(dist)
        if files is None:
            if dist == "tensorflow":
                raise IndexProblem(f"the package index at {client.url} has no project 'tensorflow' "
                                   "(is the URL the root of its simple API?); nothing was changed")
            files = ()
        listings[dist] = index_releases(files)
        if dist == "tensorflow":
            for file in files:
                try:
                    version = parse_wheel_filename(file.filename)[1]
                except InvalidWheelFilename:
                    continue
                if version.is_prerelease and not file.yanked:
                    prereleases.add(str(version))
    known = {r.version: r for r in matrix.releases}
    oldest = min(known) if known else Version("0")
    in_scope = sorted(v for v in listings["tensorflow"] if v >= oldest)
    newest_known = max(known) if known else oldest

    def wheels_of(version: Version) -> dict[str, dict[str, WheelGroup]]:
        return {d: listings[d][version] for d in DISTS if version in listings[d]}

    new = [_describe_new(client, v, wheels_of(v), matrix) for v in in_scope if v not in known]
    differences = []
    for version, release in sorted(known.items()):
        if version not in listings["tensorflow"]:
            differences.append(f"{version}: in the matrix, but the index has no (unyanked) tensorflow wheel")
            continue
        differences.extend(_differences(version, release, wheels_of(version)))
    ignored = sorted((p for p in prereleases if Version(p) > newest_known), key=Version)
    return Report(client.url, matrix_file, [str(v) for v in sorted(known)], [str(v) for v in in_scope],
                  new, differences, ignored, requests=client.requests, seconds=time.monotonic() - start)


def linux_wheel(client: IndexClient, version: Version) -> IndexFile | None:
    """The release's linux-64 tensorflow wheel to measure: cp311's where there is one, else the newest."""
    files = client.files("tensorflow") or ()
    group = index_releases(files).get(version, {}).get("linux-64")
    if group is None:
        return None
    cp311 = [f for f in group.files if "-cp311-" in f.filename]
    return cp311[0] if cp311 else group.newest_file()
