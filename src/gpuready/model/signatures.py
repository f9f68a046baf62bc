"""Failure signatures: the known causes of broken TensorFlow GPU environments, as data.

The signatures are data (gpuready/data/signatures.toml): each names a cause and the next step.
`diagnose` matches them against a TensorFlow log, a check's errors, or a file a user gives;
harmless ones are reported as information, never as the cause, and error lines that no
signature explains become `unrecognised-error`: an unknown error is never called healthy.
Pure: the caller reads the text (a huge log through certify/logwindow.py, which keeps the lines
around the marks `scan_patterns` gives).
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
                   "harmless_without_gpu", "no_gpu_note", "cause", "fix", "source"}
UNRECOGNISED = "unrecognised-error"
UNRECOGNISED_LINES = 5  # quoted in the finding
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
    source: str | None = None  # where the wording was seen (documentation)

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return self.any + self.all + self.unless

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
    error_lines: tuple[re.Pattern[str], ...] = ()  # what an error looks like ([unrecognised])

    def scan_patterns(self) -> tuple[str, ...]:
        """Every pattern whose lines a reader of a huge log must keep, as RE2 reads them."""
        return tuple(_as_re2(p.pattern) for sig in self.signatures for p in sig.patterns) + \
            tuple(_as_re2(p.pattern) for p in self.error_lines)


def _as_re2(pattern: str) -> str:
    """Python's end of text `\\Z` is RE2's `\\z`; the rest of the syntax used here is common."""
    return pattern.replace("\\Z", "\\z")


def _check_re2(patterns: Iterable[re.Pattern[str]], where: str) -> None:
    """The reader of huge logs scans with RE2 (google-re2); a pattern it cannot compile would be
    silently blind there, so it is refused here. Without google-re2 nothing is checked."""
    try:
        import re2
    except ImportError:
        return
    for pattern in patterns:
        try:
            re2.compile("(?im)" + _as_re2(pattern.pattern))
        except Exception as exc:
            raise ValueError(f"{where}: pattern {pattern.pattern!r} is not RE2 syntax ({exc})") from None


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
                no_gpu_note=raw.get("no_gpu_note"), ref=raw.get("ref"), source=raw.get("source"),
            )
            if not sig.any and not sig.all:
                raise ValueError(f"{where}: needs 'any' or 'all' patterns")
            if sig.names is not None and sig.names.groups != 1:
                raise ValueError(f"{where}.names: needs exactly one group")
            _check_re2(sig.patterns, where)
            signatures.append(sig)
        unrecognised = data.get("unrecognised", {})
        if set(unrecognised) - {"lines"}:
            raise ValueError(f"unrecognised: unknown keys {sorted(set(unrecognised) - {'lines'})}")
        error_lines = _compile(unrecognised.get("lines", []), "unrecognised.lines")
        _check_re2(error_lines, "unrecognised.lines")
        findings = {}
        for i, raw in enumerate(data.get("finding", [])):
            where = f"finding[{i}] ({raw.get('id', '?')})"
            if set(raw) != _FINDING_KEYS:
                raise ValueError(f"{where}: needs exactly the keys {sorted(_FINDING_KEYS)}")
            findings[raw["id"]] = {k: raw[k] for k in _FINDING_KEYS}
    except (tomllib.TOMLDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"signatures file {source}: {exc}") from None
    if error_lines and UNRECOGNISED not in findings:
        raise UsageError(f"signatures file {source}: [unrecognised] needs the finding {UNRECOGNISED!r}")
    return Signatures(tuple(signatures), findings, source, error_lines)


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
    cause); where none is a problem, the error lines no matched signature explains, as
    `unrecognised-error`. host_has_gpu=False turns the signatures that are expected on a host
    without a GPU into information; None means unknown (e.g. a log from another machine)."""
    signatures = signatures or load_signatures()
    findings = []
    matched = []
    for sig in signatures.signatures:
        found = sig.match(text)
        if found is None:
            continue
        matched.append(sig)
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
    if not any(f.severity == PROBLEM for f in findings):
        lines = unexplained_errors(text, matched, signatures)
        if lines:
            findings.insert(0, finding(UNRECOGNISED, signatures, evidence=lines[0],
                                       lines=" | ".join(f"'{line}'" for line in lines)))
    return findings


def unexplained_errors(text: str, matched: Iterable[Signature], signatures: Signatures) -> list[str]:
    """Lines that look like errors ([unrecognised]) outside every match of the signatures that
    matched (a harmless one's E-level noise is explained): the first few, each once."""
    if not signatures.error_lines:
        return []
    explained: list[tuple[int, int]] = []
    for sig in matched:
        for pattern in sig.any + sig.all:
            explained += [(m.start(), m.end()) for m in pattern.finditer(text)]
    out: list[str] = []
    start = 0
    for line in text.splitlines(keepends=True):
        end = start + len(line)
        bare = line.strip()
        if bare and any(p.search(line) for p in signatures.error_lines) and \
                not any(a < end and b > start for a, b in explained):
            shown = bare if len(bare) <= EVIDENCE_CHARS else bare[:EVIDENCE_CHARS - 3] + "..."
            if shown not in out:
                out.append(shown)
            if len(out) == UNRECOGNISED_LINES:
                break
        start = end
    return out


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
