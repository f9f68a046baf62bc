"""Failure signatures: the known causes of broken TensorFlow GPU environments, as data.

The signatures are data (gpuready/data/signatures.toml): each names a cause and the next step.
`diagnose` matches them against a TensorFlow log, a check's errors, or a file a user gives;
harmless ones are reported as information, never as the cause. Pure: the caller reads the text.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

from ..errors import UsageError
from .certificate import INFO, PROBLEM, Finding

SIGNATURES_FILE = "signatures.toml"
EVIDENCE_CHARS = 300
FLAGS = re.IGNORECASE | re.MULTILINE
_SIGNATURE_KEYS = {"id", "ref", "title", "severity", "any", "all", "unless", "names", "names_text",
                   "harmless_without_gpu", "no_gpu_note", "cause", "fix"}
_FINDING_KEYS = {"id", "title", "severity", "cause", "fix"}


@dataclass(frozen=True)
class Signature:
    id: str
    title: str
    severity: str
    cause: str
    fix: str
    any: tuple[re.Pattern[str], ...] = ()
    all: tuple[re.Pattern[str], ...] = ()
    unless: tuple[re.Pattern[str], ...] = ()
    names: re.Pattern[str] | None = None
    names_text: str = "{names}"
    harmless_without_gpu: bool = False
    no_gpu_note: str | None = None
    ref: int | None = None

    def match(self, text: str) -> re.Match[str] | None:
        """The first match that makes this signature apply, or None."""
        if any(p.search(text) for p in self.unless):
            return None
        first = None
        for pattern in self.all:
            found = pattern.search(text)
            if not found:
                return None
            first = first or found
        if self.any:
            found = next((m for m in (p.search(text) for p in self.any) if m), None)
            if not found:
                return None
            first = found
        return first


@dataclass(frozen=True)
class Signatures:
    signatures: tuple[Signature, ...]
    findings: dict[str, dict[str, str]]  # templates of gpuready's own findings, by id
    source: str


def _compile(raw: Any, where: str) -> tuple[re.Pattern[str], ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{where}: expected a list of regular expressions")
    try:
        return tuple(re.compile(i, FLAGS) for i in items)
    except re.error as exc:
        raise ValueError(f"{where}: bad regular expression: {exc}") from None


def parse_signatures(text: str, source: str = SIGNATURES_FILE) -> Signatures:
    """Validate and compile a signatures TOML document. Raises UsageError naming the entry."""
    try:
        data = tomllib.loads(text)
        signatures = []
        seen: set[str] = set()
        for i, raw in enumerate(data.get("signature", [])):
            where = f"signature[{i}] ({raw.get('id', '?')})"
            unknown = set(raw) - _SIGNATURE_KEYS
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            for key in ("id", "title", "severity", "cause", "fix"):
                if not isinstance(raw.get(key), str) or not raw[key]:
                    raise ValueError(f"{where}: '{key}' is required")
            if raw["severity"] not in (PROBLEM, INFO):
                raise ValueError(f"{where}: severity must be '{PROBLEM}' or '{INFO}'")
            if raw["id"] in seen:
                raise ValueError(f"{where}: duplicate id")
            seen.add(raw["id"])
            sig = Signature(
                id=raw["id"], title=raw["title"], severity=raw["severity"], cause=raw["cause"],
                fix=raw["fix"], any=_compile(raw.get("any", []), where + ".any"),
                all=_compile(raw.get("all", []), where + ".all"),
                unless=_compile(raw.get("unless", []), where + ".unless"),
                names=_compile(raw["names"], where + ".names")[0] if raw.get("names") else None,
                names_text=raw.get("names_text", "{names}"),
                harmless_without_gpu=bool(raw.get("harmless_without_gpu", False)),
                no_gpu_note=raw.get("no_gpu_note"), ref=raw.get("ref"),
            )
            if not sig.any and not sig.all:
                raise ValueError(f"{where}: needs 'any' or 'all' patterns")
            if sig.names is not None and sig.names.groups != 1:
                raise ValueError(f"{where}.names: needs exactly one group")
            signatures.append(sig)
        findings = {}
        for i, raw in enumerate(data.get("finding", [])):
            where = f"finding[{i}] ({raw.get('id', '?')})"
            if set(raw) != _FINDING_KEYS:
                raise ValueError(f"{where}: needs exactly the keys {sorted(_FINDING_KEYS)}")
            findings[raw["id"]] = {k: raw[k] for k in _FINDING_KEYS}
    except (tomllib.TOMLDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"signatures file {source}: {exc}") from None
    return Signatures(tuple(signatures), findings, source)


@lru_cache(maxsize=1)
def load_signatures() -> Signatures:
    """The signatures shipped with gpuready."""
    text = resources.files("gpuready.data").joinpath(SIGNATURES_FILE).read_text(encoding="utf-8")
    return parse_signatures(text, SIGNATURES_FILE)


def _line_of(text: str, match: re.Match[str]) -> str:
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    line = text[start:end if end >= 0 else len(text)].strip()
    return line if len(line) <= EVIDENCE_CHARS else line[:EVIDENCE_CHARS - 3] + "..."


def diagnose(text: str, *, host_has_gpu: bool | None = None,
             signatures: Signatures | None = None) -> list[Finding]:
    """Every signature that matches `text`, in the signatures' order (the first problem is the
    cause). host_has_gpu=False turns the signatures that are expected on a host without a GPU
    into information; None means unknown (e.g. a log from another machine)."""
    signatures = signatures or load_signatures()
    findings = []
    for sig in signatures.signatures:
        found = sig.match(text)
        if found is None:
            continue
        cause = sig.cause
        if sig.names is not None:
            names = list(dict.fromkeys(m.group(1) for m in sig.names.finditer(text)))
            if names:
                cause += " " + sig.names_text.format(names=", ".join(names))
        severity, note = sig.severity, None
        if sig.harmless_without_gpu and host_has_gpu is False:
            severity, note = INFO, sig.no_gpu_note
        findings.append(Finding(id=sig.id, title=sig.title, severity=severity, cause=cause,
                                fix=sig.fix, evidence=_line_of(text, found), ref=sig.ref, note=note))
    return findings


def primary(findings: Iterable[Finding]) -> Finding | None:
    """The cause: the first problem (signatures are ordered by precedence)."""
    return next((f for f in findings if f.severity == PROBLEM), None)


def finding(id: str, signatures: Signatures | None = None, evidence: str | None = None,
            **values: Any) -> Finding:
    """One of gpuready's own findings, its text filled in from `values`."""
    template = (signatures or load_signatures()).findings[id]
    fill = _Defaulting(values)
    return Finding(id=id, title=template["title"], severity=template["severity"],
                   cause=template["cause"].format_map(fill), fix=template["fix"].format_map(fill),
                   evidence=evidence)


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def merge(*groups: Iterable[Finding]) -> list[Finding]:
    """Findings from several sources, each id once, problems first (in order), then info."""
    seen: dict[str, Finding] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item.id, item)
    ordered = list(seen.values())
    return [f for f in ordered if f.severity == PROBLEM] + [f for f in ordered if f.severity != PROBLEM]
