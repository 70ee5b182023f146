"""A tqdm progress bar on stderr for long commands, shown only when stderr is a terminal (so
piped or logged output stays clean)."""

from __future__ import annotations

import sys
from collections.abc import Callable


class ProgressBar:
    """``with ProgressBar(...) as update:`` gives ``update(done, total)``, or None when no bar
    is shown. With ``total`` the bar shows from the start (the first task may finish late, as
    when Ray starts); without it, the bar appears at the first update with its total."""

    def __init__(self, enabled: bool, unit: str, desc: str, total: int | None = None) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.unit, self.desc, self.total = unit, desc, total
        self.bar = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None
        if self.total is not None:
            self._open(self.total)

        def update(done: int, total: int) -> None:
            if self.bar is None:
                self._open(total)
            self.bar.update(done - self.bar.n)

        return update

    def _open(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total or None, unit=self.unit, desc=self.desc, file=sys.stderr,
                        leave=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
