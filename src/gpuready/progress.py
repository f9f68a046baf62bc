"""How long steps report progress: the callbacks the library calls and the command line renders."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class Steps:
    """A step's title, then each line of its tool's output, then its end. This one is silent;
    the command line's shows a spinner and the duration (`cli.render.RichSteps`)."""

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        yield lambda _line: None

    def note(self, text: str) -> None:
        pass
