"""A Keras-style progress bar: `12/32 [=====>.......] - 0s 3ms/step`."""
from __future__ import annotations

import sys
import time


class Progbar:
    def __init__(self, target: int, width: int = 30, stream=None, enabled: bool = True):
        self.target, self.width = target, width
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.start = time.perf_counter()
        self._dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, current: int, values=None, finalize: bool = False):
        if not self.enabled:
            return
        if not self._dynamic and not finalize:
            return
        elapsed = time.perf_counter() - self.start
        digits = len(str(self.target))
        done = int(self.width * current / max(self.target, 1))
        bar = "=" * max(done - 1, 0) + (">" if current < self.target else "=") if done else ""
        bar = bar.ljust(self.width, ".")
        per_step = elapsed / max(current, 1)
        unit = f"{per_step * 1e3:.0f}ms/step" if per_step < 1 else f"{per_step:.1f}s/step"
        text = f"{current:>{digits}}/{self.target} [{bar}] - {elapsed:.0f}s {unit}"
        for key, value in (values or {}).items():
            text += f" - {key}: {value:.4f}"
        end = "\n" if finalize else ""
        self.stream.write(("\r" if self._dynamic else "") + text + end)
        self.stream.flush()
