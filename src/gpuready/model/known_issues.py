"""Known issues (matrix/known-issues.toml) applied to a plan: which match, and their remedies.

Pure. An issue matches a plan when its release specifier contains the plan's TensorFlow, the
platform and flavor agree, a GPU of the host has one of its compute capabilities (or it names
none), and every package range it names contains the version the plan pins. A pin remedy replaces
that pin, but only when every GPU of the host is one the issue lists: the pinned library must serve
them all (cuDNN 9.24 has no kernels below compute capability 7.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .facts import HostFacts
from .matrix import KnownIssue, Matrix

_CONDA_SPEC = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)=([0-9][0-9A-Za-z.]*)(?:=|$)")


@dataclass(frozen=True)
class Applied:
    """A known issue that matches a plan, and what was done about it."""

    issue: KnownIssue
    requirements: tuple[str, ...]  # the plan's pip lines after the remedy
    conda_packages: tuple[str, ...]  # the plan's conda specs after the remedy
    environment: tuple[tuple[str, str], ...]  # variables activation sets
    message: str


def pinned_versions(lines: Iterable[str]) -> dict[str, str]:
    """{canonical name: version} of `name==version` pip lines and `name=version[=build]` conda specs."""
    found = {}
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            match = _CONDA_SPEC.match(line.strip())
            if match:
                found[canonicalize_name(match.group(1))] = match.group(2)
            continue
        exact = [s for s in requirement.specifier if s.operator == "=="]
        if len(exact) == 1 and "*" not in exact[0].version:
            found[canonicalize_name(requirement.name)] = exact[0].version
    return found


def _contains(spec, version: str) -> bool:
    try:
        return spec.contains(Version(version.rstrip(".*")), prereleases=True)
    except InvalidVersion:
        return False


def matches(issue: KnownIssue, tensorflow: str, host: HostFacts, platform: str, flavor: str,
            pins: dict[str, str]) -> bool:
    """`flavor`: where TensorFlow itself comes from, "pip" (the index's wheel) or "conda" (conda-forge)."""
    if not issue.tensorflow.contains(tensorflow, prereleases=True):
        return False
    if platform not in issue.platforms or issue.flavor not in ("any", flavor):
        return False
    ccs = {g.compute_capability for g in host.gpus}
    if issue.compute_capabilities and not ccs & set(issue.compute_capabilities):
        return False
    return all(name in pins and _contains(spec, pins[name]) for name, spec in issue.packages.items())


def _replace_pin(lines: tuple[str, ...], package: str, requirement: str) -> tuple[str, ...]:
    out = []
    for line in lines:
        name = line.split("==")[0].split("=")[0].split("[")[0].strip()
        out.append(requirement if canonicalize_name(name) == package else line)
    return tuple(out)


def apply(matrix: Matrix, tensorflow: str, host: HostFacts, platform: str, flavor: str,
          requirements: tuple[str, ...], conda_packages: tuple[str, ...]) -> list[Applied]:
    """Every known issue that matches, each with the plan's lines after its remedy (in order)."""
    applied = []
    for issue in matrix.known_issues:
        pins = pinned_versions(requirements + conda_packages)
        if not matches(issue, tensorflow, host, platform, flavor, pins):
            continue
        remedy = issue.remedy
        where = ", ".join(issue.sources[:2])
        environment: tuple[tuple[str, str], ...] = ()
        if remedy.kind == "pin" and remedy.package is not None:
            outside = [g for g in host.gpus if issue.compute_capabilities
                       and g.compute_capability not in issue.compute_capabilities]
            if outside:
                message = (f"{issue.title} ({issue.id}; {where}). Not pinned to {remedy.requirement}: "
                           f"GPU {outside[0].index} (compute capability {outside[0].compute_capability}) "
                           "is not one it serves")
            else:
                before = pins.get(remedy.package)
                requirements = _replace_pin(requirements, remedy.package, remedy.requirement or "")
                conda_packages = _replace_pin(conda_packages, remedy.package, remedy.requirement or "")
                message = (f"{issue.title} ({issue.id}; {where}). Remedy applied: {remedy.requirement}"
                           + (f" instead of {before}" if before else ""))
        elif remedy.kind == "env" and remedy.name:
            environment = ((remedy.name, remedy.value or ""),)
            message = f"{issue.title} ({issue.id}; {where}). Remedy applied: activation sets {remedy.name}={remedy.value}"
        else:
            message = f"{issue.title} ({issue.id}; {where}). No remedy is known: {remedy.advice}"
        applied.append(Applied(issue, requirements, conda_packages, environment, message))
    return applied


# --------------------------------------------------------------------------- naming them in a diagnosis

_LOG_CC = re.compile(r"compute capability:? (\d+\.\d+)", re.IGNORECASE)
_LOG_CUDNN = re.compile(r"Loaded cuDNN version (\d+)")


@dataclass(frozen=True)
class Context:
    """What is known of where a failure happened; an unknown fact rules no issue out."""

    tensorflow: str | None = None
    compute_capabilities: tuple[str, ...] = ()
    packages: tuple[tuple[str, str], ...] = ()  # (canonical name, version) installed
    platform: str | None = None
    flavor: str | None = None  # where TensorFlow comes from: "pip" or "conda"


def context_of_log(text: str) -> Context:
    """The facts a TensorFlow log states about its machine: GPU compute capabilities, and the
    cuDNN it loaded ("Loaded cuDNN version 90300" is 9.3.0)."""
    ccs = tuple(dict.fromkeys(_LOG_CC.findall(text)))
    packages: tuple[tuple[str, str], ...] = ()
    match = _LOG_CUDNN.search(text)
    if match and len(match.group(1)) >= 5:
        number = int(match.group(1))
        packages = (("nvidia-cudnn-cu12", f"{number // 10000}.{number // 100 % 100}.{number % 100}"),)
    return Context(compute_capabilities=ccs, packages=packages)


def candidates(matrix: Matrix, symptom: str, context: Context) -> list[KnownIssue]:
    """The known issues with this symptom that the known facts of `context` do not rule out."""
    found = []
    installed = dict(context.packages)
    for issue in matrix.known_issues:
        if issue.symptom != symptom:
            continue
        if context.tensorflow and not issue.tensorflow.contains(context.tensorflow, prereleases=True):
            continue
        if context.platform and context.platform not in issue.platforms:
            continue
        if context.flavor and issue.flavor not in ("any", context.flavor):
            continue
        if context.compute_capabilities and issue.compute_capabilities and \
                not set(context.compute_capabilities) & set(issue.compute_capabilities):
            continue
        if any(name in installed and not _contains(spec, installed[name]) for name, spec in issue.packages.items()):
            continue
        found.append(issue)
    return found


def name_known_issues(findings: Iterable, matrix: Matrix, context: Context) -> list:
    """The findings, each whose signature is a known issue's symptom naming that issue
    (`known_issue`, and a note with its source and remedy)."""
    out = []
    for item in findings:
        issues = candidates(matrix, item.id, context)
        if not issues:
            out.append(item)
            continue
        first = issues[0]
        remedy = first.remedy
        what = (f"pin {remedy.requirement}" if remedy.kind == "pin" else
                f"set {remedy.name}={remedy.value}" if remedy.kind == "env" else remedy.advice)
        note = f"Known issue {first.id}: {first.title} ({first.sources[0]}). Remedy: {what}."
        if len(issues) > 1:
            note += " Also possible: " + ", ".join(i.id for i in issues[1:]) + "."
        if item.note:
            note = f"{item.note} {note}"
        out.append(item.model_copy(update={"known_issue": first.id, "note": note}))
    return out


def context_of_environment(inputs, installed: dict[str, str], host: HostFacts) -> Context:
    """The facts of an installed environment (its Inputs, may be None) on this host."""
    return Context(
        tensorflow=inputs.tensorflow if inputs is not None else None,
        compute_capabilities=tuple(g.compute_capability for g in host.gpus if g.compute_capability),
        packages=tuple(installed.items()), platform=host.platform,
        flavor=(("conda" if inputs.source == "conda-forge" else "pip") if inputs is not None else None))
