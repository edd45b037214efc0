"""Logging set-up shared by the server and the agents: one line per record, as text or as JSON.

Records may carry structured fields (`extra={"fields": {...}}`, e.g. the access log): the text format
shows them as key=value pairs in place of the message, the JSON format as keys of their own.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import orjson

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# libraries that say at INFO what we say better ourselves (httpx: one line per Keystone call)
QUIET = ("httpx", "httpcore")


def key_values(fields: dict[str, Any]) -> str:
    """`a=1 b=x`; values with spaces, quotes or nothing in them are quoted."""
    out = []
    for key, value in fields.items():
        text = str(value)
        if not text or " " in text or '"' in text:
            text = orjson.dumps(text).decode()
        out.append(f"{key}={text}")
    return " ".join(out)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict):
            return super().format(record)
        # a record with fields (one per API request) is formatted straight: TEXT_FORMAT, fields as the message
        return f"{self.formatTime(record)} {record.levelname} {record.name} {key_values(fields)}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if self._second[0] != second:  # strftime once a second, not once a line
            self._second = (second, super().formatTime(record, "%Y-%m-%d %H:%M:%S"))
        return f"{self._second[1]},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                                "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((k, v) for k, v in fields.items() if k not in line)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return super().formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}"


class BufferedStderr(logging.StreamHandler):
    """Standard error, where records with fields (the access log: one per API request) wait in a buffer
    that a thread flushes every `interval` seconds, and at the API's shutdown (flush()); any other record
    is written at once. A write(2) per request on the event loop's thread gives the GIL away in the middle
    of the request: 10 % of bench/api.py's port creates per second."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._stopped = threading.Event()
        try:
            stream: Any = open(sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8",  # noqa: SIM115
                               errors="backslashreplace", closefd=False)
            self.buffered = True
        except (AttributeError, OSError, ValueError):  # no file descriptor (a captured stream): write through
            stream, self.buffered = sys.stderr, False
        super().__init__(stream)
        if self.buffered:
            threading.Thread(target=self._flush_every, name="fermion-log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if not self.buffered or not hasattr(record, "fields"):
                self.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own policy: report, never raise
            self.handleError(record)

    def _flush_every(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.flush()
            except (OSError, ValueError):  # standard error is gone: nothing left to write to
                return

    def close(self) -> None:
        self._stopped.set()
        try:
            self.flush()
        except (OSError, ValueError):  # standard error already closed
            pass
        super().close()


def flush() -> None:
    """Write out what the handlers hold (the API calls it at shutdown: uvicorn then ends the process by
    re-raising SIGTERM, which runs no exit handlers)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def setup(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger (replacing earlier handlers) to write to stderr."""
    handler = BufferedStderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, BufferedStderr):
            old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    # no format of ours shows thread or process names: spare every record looking them up
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
