"""Reading and checking the matrix files: one reader per file, every mistake a `MatrixError`.

Cross-file rules are checked here too: a release's CUDA has a row in cuda.toml, its pin set exists
in cuda-wheels.toml, every PTX ISA in kernels.toml maps to a CUDA release, known issues name
releases and packages that parse.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import MatrixError
from ._toml import Table, parse_document
from .facts import COMPUTE_CAPABILITY, PLATFORMS
from .gpu_names import GpuNames, Normalisation
from .matrix import (AND_CUDA_KINDS, DISTS, SCOPE_ALL, SCOPE_NCCL, Architecture, CondaForgeRelease, DriverPair,
                     KernelSet, KnownIssue, Matrix, PinSet, Release, ReleaseKernels, Remedy, WheelSet)

_ISA = re.compile(r"[0-9]\.[0-9]")
SECTIONS = ("nv_fatbin", "embedded")
REMEDY_KINDS = ("pin", "env", "none")
ISSUE_FLAVORS = ("pip", "conda", "any")


def _python(table: Table, key: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        parts = value.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise table.error(key, f"{value!r} is not a Python version X.Y")
    return values


def _arches(table: Table, key: str, prefix: str, default: Any = ...) -> tuple[str, ...]:
    values = table.strings(key, default)
    for value in values:
        digits = value[len(prefix):]
        if not value.startswith(prefix) or not digits.isdigit() or len(digits) < 2:
            raise table.error(key, f"{value!r} is not of the form {prefix}XY")
    return values


def _platforms(table: Table, key: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if value not in PLATFORMS:
            raise table.error(key, f"unknown platform {value!r} (expected one of {', '.join(PLATFORMS)})")
    return values


def _driver(table: Table, key: str) -> str:
    text = table.get(key, str)
    try:
        Version(text)
    except InvalidVersion:
        raise table.error(key, f"not a driver version: {text!r}") from None
    return text


def _read_releases(table: Table, pin_sets: Mapping[str, PinSet], cuda_file: str,
                   cuda_releases: Mapping[Version, DriverPair]) -> tuple[Release, ...]:
    table.only("schema", "releases")
    releases = []
    for name, rel in table.table("releases").items():
        version = _release_version(rel, name)
        rel.only("cuda", "cudnn", "sass", "ptx", "gpu_platforms", "pins", "pin_overrides",
                 "and_cuda", "extra_unresolvable", "wheels", "review")
        review = rel.get("review", str, "")
        # Under review, the facts refresh could not read may be missing (never guessed).
        unknown = "" if review else ...
        cuda = rel.get("cuda", str, unknown)
        if cuda or not review:
            rel.version("cuda", what="CUDA version")
            base = Version(cuda)
            full = base if len(base.release) == 3 else Version(f"{cuda}.0")
            if full not in cuda_releases and not review:
                raise rel.error("cuda", f"CUDA {cuda} has no row in {cuda_file} (releases)")
        pins = rel.get("pins", str, unknown)
        if pins and pins not in pin_sets:
            raise rel.error("pins", f"no pin set {pins!r} in cuda-wheels.toml")
        overrides = rel.strings("pin_overrides", ())
        for i, text in enumerate(overrides):
            _requirement(rel, f"pin_overrides[{i}]", text)
        and_cuda = rel.get("and_cuda", str, "none" if review else ...)
        if and_cuda not in AND_CUDA_KINDS:
            raise rel.error("and_cuda", f"expected one of {', '.join(AND_CUDA_KINDS)}, got {and_cuda!r}")
        unresolvable = rel.table("extra_unresolvable", {})
        unresolvable.only("pythons", "reason")
        wheels: dict[str, dict[str, WheelSet]] = {}
        for dist, plats in rel.table("wheels").items():
            if dist not in DISTS:
                raise plats.error("", f"unknown distribution (expected one of {', '.join(DISTS)})")
            wheels[dist] = {}
            for plat, ws in plats.items():
                _platforms(plats, plat, (plat,))
                ws.only("pythons", "glibc")
                glibc = ws.get("glibc", str, None)
                if glibc is not None:
                    ws.version("glibc", what="glibc version")
                wheels[dist][plat] = WheelSet(_python(ws, "pythons", ws.strings("pythons")), glibc)
        gpu_platforms = _platforms(rel, "gpu_platforms", rel.strings("gpu_platforms", () if review else ...))
        for plat in gpu_platforms:
            if plat not in wheels.get("tensorflow", {}):
                raise rel.error("gpu_platforms", f"{plat} has no tensorflow wheel listed under wheels")
        releases.append(Release(
            version=version,
            cuda=cuda,
            cudnn=rel.get("cudnn", str, unknown),
            sass=_arches(rel, "sass", "sm_", () if review else ...),
            ptx=_arches(rel, "ptx", "compute_", () if review else ...),
            gpu_platforms=gpu_platforms,
            pins=pins,
            pin_overrides=overrides,
            and_cuda=and_cuda,
            extra_unresolvable_pythons=_python(unresolvable, "pythons", unresolvable.strings("pythons", ())),
            extra_unresolvable_reason=unresolvable.get("reason", str, ""),
            wheels=wheels,
            review=review,
        ))
    releases.sort(key=lambda r: r.version, reverse=True)
    return tuple(releases)


def _release_version(table: Table, name: str) -> Version:
    try:
        return Version(name)
    except InvalidVersion:
        raise MatrixError(table.file, table.path, "not a valid TensorFlow version") from None


def _requirement(table: Table, key: str, text: str) -> Requirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise table.error(key, f"not a valid requirement {text!r}: {exc}") from None
    if len(req.specifier) != 1 or next(iter(req.specifier)).operator != "==":
        raise table.error(key, f"{text!r} must pin one exact version (==)")
    return req


def _read_pin_sets(table: Table) -> dict[str, PinSet]:
    table.only("schema", "pin_sets")
    sets = {}
    for name, pin in table.table("pin_sets").items():
        pin.only("cuda", "cudnn", "packages")
        packages = pin.strings("packages")
        for i, text in enumerate(packages):
            _requirement(pin, f"packages[{i}]", text)
        pin.version("cuda", what="CUDA version")
        pin.version("cudnn", what="cuDNN version")
        sets[name] = PinSet(name, pin.get("cuda", str), pin.get("cudnn", str), packages)
    return sets


def _read_conda_forge(table: Table) -> tuple[tuple[CondaForgeRelease, ...], str]:
    table.only("schema", "channel", "releases")
    releases = []
    for name, rel in table.table("releases").items():
        version = _release_version(rel, name)
        rel.only("cuda", "pythons", "platforms", "sass", "ptx", "verified", "source")
        cuda = rel.strings("cuda")
        for value in cuda:
            rel.version("cuda", value, what="CUDA version")
        releases.append(CondaForgeRelease(
            version=version,
            cuda=cuda,
            pythons=_python(rel, "pythons", rel.strings("pythons")),
            platforms=_platforms(rel, "platforms", rel.strings("platforms")),
            sass=_arches(rel, "sass", "sm_"),
            ptx=_arches(rel, "ptx", "compute_"),
            verified=rel.get("verified", bool),
            source=rel.get("source", str, ""),
        ))
    releases.sort(key=lambda r: r.version, reverse=True)
    return tuple(releases), table.get("channel", str)


def _read_cuda(table: Table) -> tuple[dict[int, DriverPair], dict[Version, DriverPair], dict[str, Version]]:
    table.only("schema", "minor_version_floor", "releases", "ptx_isa")
    floors = {}
    for major, row in table.table("minor_version_floor").items():
        if not major.isdigit():
            raise row.error("", "a CUDA major version must be a whole number")
        row.only("linux", "windows")
        floors[int(major)] = DriverPair(_driver(row, "linux"),
                                        _driver(row, "windows") if "windows" in row.data else None)
    releases = {}
    for name, row in table.table("releases").items():
        version = _release_version(row, name)
        if len(version.release) != 3:
            raise row.error("", "a CUDA release is written X.Y.Z")
        row.only("linux", "windows")
        releases[version] = DriverPair(_driver(row, "linux"),
                                       _driver(row, "windows") if "windows" in row.data else None)
    for version in releases:
        if version.major not in floors:
            raise table.error("minor_version_floor", f"no floor for CUDA {version.major} (needed by {version})")
    isa_table = table.table("ptx_isa")
    ptx_isa = {}
    for isa in isa_table.data:
        if not _ISA.fullmatch(isa):
            raise isa_table.error(isa, "a PTX ISA version is written X.Y")
        cuda = isa_table.version(isa, what="CUDA release")
        if cuda not in releases:
            raise isa_table.error(isa, f"CUDA {cuda} has no row in releases")
        ptx_isa[isa] = cuda
    return floors, releases, ptx_isa


def _regex(table: Table, key: str, text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise table.error(key, f"not a regular expression: {exc}") from None


def _read_gpus(table: Table) -> tuple[GpuNames, tuple[int, ...], tuple[Architecture, ...]]:
    table.only("schema", "experimental_majors", "ambiguous", "normalise", "cc", "architectures")
    rules = table.table("normalise")
    rules.only("drop_patterns_first", "strip_prefixes", "rewrite", "drop_tokens_anywhere", "strip_suffixes",
               "strip_suffix_regex")
    rewrite = []
    for i, pair in enumerate(rules.get("rewrite", list)):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise rules.error(f"rewrite[{i}]", "expected [pattern, replacement]")
        rewrite.append((_regex(rules, f"rewrite[{i}]", pair[0]), pair[1]))
    normalisation = Normalisation(
        drop_first=tuple(_regex(rules, "drop_patterns_first", p) for p in rules.strings("drop_patterns_first")),
        strip_prefixes=rules.strings("strip_prefixes"),
        rewrite=tuple(rewrite),
        drop_tokens=_regex(rules, "drop_tokens_anywhere", rules.get("drop_tokens_anywhere", str)),
        strip_suffixes=rules.strings("strip_suffixes"),
        strip_suffix=_regex(rules, "strip_suffix_regex", rules.get("strip_suffix_regex", str)),
    )
    models = {}
    names = table.table("cc")
    for model in names.data:
        cc = names.get(model, str)
        if not COMPUTE_CAPABILITY.fullmatch(cc):
            raise names.error(model, f"{cc!r} is not a compute capability X.Y")
        models[model] = cc
    majors = table.get("experimental_majors", list)
    for i, major in enumerate(majors):
        if not isinstance(major, int) or isinstance(major, bool):
            raise table.error(f"experimental_majors[{i}]", f"expected int, got {major!r}")
    architectures = []
    for row in table.list_of_tables("architectures"):
        row.only("name", "ccs", "first_branch", "last_branch", "source")
        ccs = row.strings("ccs")
        for cc in ccs:
            if not COMPUTE_CAPABILITY.fullmatch(cc):
                raise row.error("ccs", f"{cc!r} is not a compute capability X.Y")
        architectures.append(Architecture(row.get("name", str), ccs, row.get("first_branch", int, None),
                                          row.get("last_branch", int, None), row.get("source", str)))
    gpu_names = GpuNames(normalisation, models, frozenset(table.strings("ambiguous", ())))
    return gpu_names, tuple(majors), tuple(architectures)


def _read_kernels(table: Table, releases: Mapping[Version, Release], ptx_isa: Mapping[str, Version]) \
        -> dict[Version, ReleaseKernels]:
    table.only("schema", "releases")
    found = {}
    for name, rel in table.table("releases").items():
        version = _release_version(rel, name)
        if version not in releases:
            raise MatrixError(rel.file, rel.path, "not a release of tensorflow.toml")
        rel.only("wheel", "sha256", "measured", "sets", "unmeasured")
        unmeasured = rel.get("unmeasured", str, "")
        if unmeasured and rel.data.get("sets"):
            raise rel.error("sets", "a release whose code could not be measured has no sets")
        sets = []
        for row in rel.list_of_tables("sets", [] if unmeasured else ...):
            row.only("library", "section", "fatbins", "sass", "ptx", "target", "isa", "scope", "tool")
            section = row.get("section", str)
            if section not in SECTIONS:
                raise row.error("section", f"expected one of {', '.join(SECTIONS)}, got {section!r}")
            scope = row.get("scope", str)
            if scope not in (SCOPE_ALL, SCOPE_NCCL):
                raise row.error("scope", f"expected {SCOPE_ALL} or {SCOPE_NCCL}, got {scope!r}")
            ptx = row.get("ptx", str, None)
            if ptx is not None:
                if not re.fullmatch(r"compute_[0-9]{2,3}", ptx):
                    raise row.error("ptx", f"{ptx!r} is not of the form compute_XY")
                isa = row.get("isa", str)
                if isa not in ptx_isa:
                    raise row.error("isa", f"PTX ISA {isa!r} has no row in cuda.toml [ptx_isa]")
                target = row.get("target", str)
                if not re.fullmatch(r"sm_[0-9]{2,3}[af]?", target):
                    raise row.error("target", f"{target!r} is not a PTX target sm_XY[a]")
            else:
                isa = target = None
                row.only("library", "section", "fatbins", "sass", "scope", "tool")
            sets.append(KernelSet(row.get("library", str), section, row.get("fatbins", int),
                                  _arches(row, "sass", "sm_"), ptx, target, isa, scope, row.get("tool", str)))
        found[version] = ReleaseKernels(rel.get("wheel", str), rel.get("sha256", str), rel.get("measured", str),
                                        tuple(sets), unmeasured)
    return found


def _read_known_issues(table: Table) -> tuple[KnownIssue, ...]:
    table.only("schema", "issue")
    issues = []
    seen: set[str] = set()
    for row in table.list_of_tables("issue"):
        row.only("id", "title", "tensorflow", "compute_capabilities", "packages", "platforms", "flavor",
                 "symptom", "sources", "remedy", "checked", "status")
        ident = row.get("id", str)
        if ident in seen:
            raise row.error("id", f"duplicate id {ident!r}")
        seen.add(ident)
        ccs = row.strings("compute_capabilities")
        for cc in ccs:
            if not COMPUTE_CAPABILITY.fullmatch(cc):
                raise row.error("compute_capabilities", f"{cc!r} is not a compute capability X.Y")
        packages_table = row.table("packages")
        packages = {canonicalize_name(name): packages_table.specifier(name) for name in packages_table.data}
        flavor = row.get("flavor", str)
        if flavor not in ISSUE_FLAVORS:
            raise row.error("flavor", f"expected one of {', '.join(ISSUE_FLAVORS)}, got {flavor!r}")
        remedy_table = row.table("remedy")
        kind = remedy_table.get("kind", str)
        if kind not in REMEDY_KINDS:
            raise remedy_table.error("kind", f"expected one of {', '.join(REMEDY_KINDS)}, got {kind!r}")
        if kind == "pin":
            remedy_table.only("kind", "requirement")
            requirement = remedy_table.get("requirement", str)
            if flavor != "conda":
                _requirement(remedy_table, "requirement", requirement)
            remedy = Remedy(kind, requirement=requirement)
        elif kind == "env":
            remedy_table.only("kind", "name", "value")
            remedy = Remedy(kind, name=remedy_table.get("name", str), value=remedy_table.get("value", str))
        else:
            remedy_table.only("kind", "advice")
            remedy = Remedy(kind, advice=remedy_table.get("advice", str))
        sources = row.strings("sources")
        if not sources:
            raise row.error("sources", "a known issue names its public source")
        issues.append(KnownIssue(
            id=ident, title=row.get("title", str), tensorflow=row.specifier("tensorflow"),
            compute_capabilities=ccs, packages=packages,
            platforms=_platforms(row, "platforms", row.strings("platforms")), flavor=flavor,
            symptom=row.get("symptom", str), sources=sources, remedy=remedy, checked=row.get("checked", str),
            status=row.get("status", str)))
    return tuple(issues)


def read_all(texts: Mapping[str, str], source: str) -> Matrix:
    """The validated matrix from the text of every file."""
    tables = {name: parse_document(name, text, 2 if name == "gpus.toml" else 1) for name, text in texts.items()}
    pin_sets = _read_pin_sets(tables["cuda-wheels.toml"])
    floors, cuda_releases, ptx_isa = _read_cuda(tables["cuda.toml"])
    releases = _read_releases(tables["tensorflow.toml"], pin_sets, "cuda.toml", cuda_releases)
    kernels = _read_kernels(tables["kernels.toml"], {r.version: r for r in releases}, ptx_isa)
    releases = tuple(_with_kernels(r, kernels.get(r.version)) for r in releases)
    gpu_names, experimental, architectures = _read_gpus(tables["gpus.toml"])
    conda_forge, channel = _read_conda_forge(tables["conda-forge.toml"])
    known = _read_known_issues(tables["known-issues.toml"])
    return Matrix(releases, pin_sets, floors, cuda_releases, ptx_isa, gpu_names, experimental, architectures,
                  conda_forge, channel, known, source)


def _with_kernels(release: Release, kernels: ReleaseKernels | None) -> Release:
    from dataclasses import replace

    return replace(release, kernels=kernels) if kernels is not None else release
