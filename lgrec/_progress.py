"""A dependency-free progress bar on stderr for long loops."""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """Redraws ``label [#####.....] done/total  elapsed`` in place on stderr.

    Draws only when enabled, when stderr is a terminal, and when the loop has
    run for longer than ``delay`` seconds (so short loops stay silent), at most
    ten times a second.

    Parameters
    ----------
    total : int
        Number of steps.
    label : str
        Text before the bar.
    enabled : bool, default=True
    delay : float, default=1.0
        Seconds before the first draw.
    stream : file-like, default=sys.stderr
    """

    def __init__(self, total: int, label: str = "", enabled: bool = True, delay: float = 1.0, stream=None):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.delay = delay
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.drawn = False

    def update(self, done: int) -> None:
        """Report ``done`` finished steps."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.started < self.delay or (now - self.last_draw < 0.1 and done < self.total):
            return
        width = 30
        filled = int(width * min(done, self.total) / self.total)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"{now - self.started:.1f}s"
        )
        self.stream.flush()
        self.last_draw = now
        self.drawn = True

    def close(self) -> None:
        """Clear the bar's line if it was drawn."""
        if self.drawn:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
