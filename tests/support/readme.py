"""The README's ```console blocks as steps a test can run: each `$ command` (with its `\\` continuation lines
and without a trailing `# comment`) and the output the README shows for it.

Shown output is an example of what the user sees, not a recording: addresses, ids, MACs, counts and times
differ from run to run. `same_shape` therefore compares lines with every such value reduced to its kind,
and `...` in the README stands for anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
_VALUES = [  # most specific first; each becomes a placeholder of its kind
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b"), "<mac>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b"), "<ip>"),
    (re.compile(r"\b(?:req|tap|qr|qg|brq)-?[0-9a-f]{6,}[0-9a-f-]*\b"), "<name>"),
    (re.compile(r"\b(?=[0-9]*[a-f])[0-9a-f]{8,}\b"), "<id>"),  # hex with a letter: 1.0451484790 is a number
    (re.compile(r"(?<![A-Za-z_])\d+(?:\.\d+)?"), "<n>"),  # not in a name: compute1 stays compute1
]
_WILDCARD = re.compile(r"(?:<id>|<name>|<n>|<ip>|<mac>)?-?\.\.\.")


@dataclass
class Step:
    command: str  # as bash runs it (continuations kept, comment dropped)
    shown: list[str]  # the output lines the README shows
    line: int  # where the command starts in the README (1-based), for messages

    @property
    def expect_failure(self) -> bool:
        """The README shows this command failing: all its pings lost, an error, or a trace that does not reach
        (`fermion trace` exits 1 then)."""
        failed = ("error", "fermion: ", "fermion lab: ", "verdict: blocked", "verdict: not routable")
        return any("100% packet loss" in s or s.lower().startswith(failed) for s in self.shown)


def _strip_comment(line: str) -> str:
    """Drop a trailing `  # comment` (two spaces or more before the #, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and line[max(0, i - 2):i] == "  ":
            return line[:i].rstrip()
    return line


def steps(text: str) -> list[Step]:
    out: list[Step] = []
    for block in _FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start(1)) + 1
        lines = block.group(1).splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.startswith("$ "):
                if out and out[-1].line >= first_line:
                    out[-1].shown.append(line)
                i += 1
                continue
            start = i
            command = [line[2:]]
            while command[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                command.append(lines[i])
            command[-1] = _strip_comment(command[-1])
            out.append(Step("\n".join(command), [], first_line + start))
            i += 1
    return out


def readme_steps(path: Path) -> list[Step]:
    return steps(path.read_text())


def normalize(line: str) -> str:
    line = " ".join(line.split())
    for pattern, kind in _VALUES:
        line = pattern.sub(kind, line)
    return line


def _pattern(shown: str) -> re.Pattern[str]:
    parts = _WILDCARD.split(normalize(shown))
    return re.compile(".*".join(re.escape(p) for p in parts))


def same_shape(shown: list[str], actual: str) -> list[str]:
    """The shown lines that have no line of the same shape in the actual output, in order (a shown line
    must come after the one matched before it). Empty: the output is what the README promises."""
    got = [normalize(line) for line in actual.splitlines()]
    missing = []
    at = 0
    for line in shown:
        if not line.strip() or line.strip() == "...":
            continue
        pattern = _pattern(line)
        for j in range(at, len(got)):
            if pattern.fullmatch(got[j]):
                at = j + 1
                break
        else:
            missing.append(line)
    return missing
