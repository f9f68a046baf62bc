"""GPU product names -> compute capability, by exact model after normalisation, never by substring.

"Quadro RTX 5000" is 7.5, "RTX 5000 Ada Generation" 8.9 and "GeForce RTX 5090" 12.0: a substring
match gets two of those wrong. The rules turn the name a driver prints ("NVIDIA A100-SXM4-80GB",
"Tesla T4", "NVIDIA GeForce RTX 3050 Ti Laptop GPU") into the model ("a100", "t4",
"geforce rtx 3050 ti") and look that up; they are data (matrix/gpus.toml, [normalise]). A name that
normalises to no known model, or to an ambiguous one, is unknown: never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Normalisation:
    drop_first: tuple[re.Pattern[str], ...]  # deleted anywhere first (" (nvgpu)", " mig 1g.5gb")
    strip_prefixes: tuple[str, ...]  # removed from the front, repeatedly ("nvidia ", "tesla ")
    rewrite: tuple[tuple[re.Pattern[str], str], ...]  # ("3050ti" -> "3050 ti", "-16q" -> "")
    drop_tokens: re.Pattern[str]  # deleted between words (memory sizes: "72gb")
    strip_suffixes: tuple[str, ...]  # removed from the end, repeatedly (" laptop gpu")
    strip_suffix: re.Pattern[str]  # likewise ("-sxm4", " 80gb", " pcie")


@dataclass(frozen=True)
class GpuNames:
    rules: Normalisation
    models: Mapping[str, str]  # normalised model -> compute capability
    ambiguous: frozenset[str]  # normalised names that stand for several models

    def model(self, name: str) -> str:
        return normalise(name, self.rules)

    def compute_capability(self, name: str) -> str | None:
        model = self.model(name)
        if model in self.ambiguous:
            return None
        return self.models.get(model)


def normalise(name: str, rules: Normalisation) -> str:
    text = _SPACES.sub(" ", name.strip().casefold())
    for pattern in rules.drop_first:
        text = pattern.sub("", text)
    changed = True
    while changed:
        changed = False
        for prefix in rules.strip_prefixes:
            if text.startswith(prefix):
                text, changed = text[len(prefix):], True
    for pattern, replacement in rules.rewrite:
        text = pattern.sub(replacement, text)
    text = _SPACES.sub(" ", rules.drop_tokens.sub(" ", text)).strip()
    changed = True
    while changed:
        changed = False
        for suffix in rules.strip_suffixes:
            if text.endswith(suffix):
                text, changed = text[: -len(suffix)], True
        shorter = rules.strip_suffix.sub("", text)
        if shorter != text:
            text, changed = shorter, True
    return _SPACES.sub(" ", text).strip(" -")
