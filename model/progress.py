"""Progress bars: live on a terminal; in a log (SageMaker, CI, a pipe) one
line every 30 seconds rather than a flood."""
from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30)
    return tqdm(iterable, **kwargs)
