"""Files the data plane's daemons read (configurations, scripts), written whole."""

from __future__ import annotations

import os
from pathlib import Path


def replace(path: Path, text: str, mode: int = 0o644) -> bool:
    """Put text in path unless it is there already: written beside it, then renamed over it, so a reader
    never sees half of it. Returns whether the file changed."""
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True
