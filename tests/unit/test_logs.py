"""The two log formats as written to standard error."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest

from fermion import logs


@pytest.fixture
def root() -> Iterator[None]:
    """logs.setup() replaces the root logger's handlers: put pytest's back afterwards."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in logger.handlers:
        if handler not in handlers:
            handler.close()
    logger.handlers[:] = handlers
    logger.setLevel(level)


def emit(fmt: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    logs.setup("info", fmt)
    log = logging.getLogger("fermion.test")
    log.debug("not at info")
    log.info("plain %s", "message")
    log.info("GET /x 200", extra={"fields": {"method": "GET", "path": "/x y", "status": 200, "project_id": ""}})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    return capsys.readouterr().err.splitlines()


def test_text_lines_show_fields_as_key_values(root: None, capsys: pytest.CaptureFixture[str]) -> None:
    lines = emit("text", capsys)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(rf"{stamp} INFO fermion\.test plain message", lines[0])
    assert re.fullmatch(rf'{stamp} INFO fermion\.test method=GET path="/x y" status=200 project_id=""', lines[1])
    assert re.fullmatch(rf"{stamp} ERROR fermion\.test failed", lines[2])
    assert lines[-1] == "ValueError: boom"


def test_json_lines_are_objects_with_the_fields_as_keys(root: None, capsys: pytest.CaptureFixture[str]) -> None:
    records = [json.loads(line) for line in emit("json", capsys)]
    assert [r["message"] for r in records] == ["plain message", "GET /x 200", "failed"]
    assert records[1] | {"time": ""} == {"time": "", "level": "INFO", "logger": "fermion.test",
                                         "message": "GET /x 200", "method": "GET", "path": "/x y", "status": 200,
                                         "project_id": ""}
    assert records[2]["level"] == "ERROR" and records[2]["exception"].endswith("ValueError: boom")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", records[0]["time"])
