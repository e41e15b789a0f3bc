"""The request examples in README.md and docs/*.md, run as a reader would copy them: each shell
block that talks to the server on port 8000 runs through ``bash`` against a real ``python -m
app``, and every reply shown in a comment under a ``curl`` must match the server's answer; each
Python block that talks to it runs too, and what a comment shows after a statement (``print(x)
# [7 2 1 ...]``, or a bare expression as in a REPL) must be what it prints.

A shown reply is matched loosely, as a reader reads it: each ``"key": value`` pair it shows
(a string, or a number to the digits shown) must be in the real reply, ``...`` elides the rest;
a bare status in a comment (``# 200``, ``# 401``) must be the status. Without either, the
reply must be a 2xx. So a renamed field, a changed label, a reworded error or a drifted score
fails here instead of in a user's terminal.
"""

from __future__ import annotations

import ast
import io
import json
import re
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.app.serving_process import start_server, stop_server
from tests.paths import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# The models the examples call: fewer than all, for a quicker start.
MODELS = ["mnist", "sentiment", "spam", "sales", "churn", "movie_profit"]
SERVER = re.compile(r"http://(?:127\.0\.0\.1|localhost):8000")
# Blocks that start their own server or change the models folder are the reader's, not ours.
NOT_RUN = re.compile(r"-m app\b|\bcp -r\b|\bdocker\b|\bhelm\b|\bkubectl\b")
SHOWN_PAIR = re.compile(r'"(\w+)"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:e-?\d+)?)')
BARE_STATUS = re.compile(r"^#\s*([1-5]\d\d)\b")
MARK = "__doc_example_reply__"


@dataclass
class Command:
    """One ``curl`` of a block and what the doc shows under it."""

    line: int
    text: str
    shown: list[str] = field(default_factory=list)


@dataclass
class Block:
    where: str  # file:line
    script: str
    curls: list[Command]


def fenced_blocks(languages: tuple[str, ...]) -> Iterator[tuple[str, int, list[str]]]:
    """Each fenced code block of the docs in one of ``languages``: (file name, the line of its
    opening fence, its lines)."""
    for path in DOCS:
        lines = path.read_text().splitlines()
        start = None
        for number, line in enumerate(lines, 1):
            if not line.startswith("```"):
                continue
            if start is None:
                start, language = number, line[3:].strip()
            else:
                if language in languages:
                    yield path.name, start, lines[start : number - 1]
                start = None


def example_blocks() -> list[Block]:
    blocks = []
    for name, start, body in fenced_blocks(("bash", "sh", "")):
        text = "\n".join(body)
        if (_talks_to_server(text) or _writes_a_request(text)) and not NOT_RUN.search(text):
            blocks.append(_block(f"{name}:{start}", start, body))
    return blocks


def _talks_to_server(text: str) -> bool:
    return bool(SERVER.search(text)) and "curl" in text


def _writes_a_request(text: str) -> bool:
    """A block that makes the request bodies the next blocks send (``/tmp/mnist_v1.json``)."""
    return text.startswith(".venv/bin/python") and "/tmp/" in text and "-m " not in text


def _block(where: str, start: int, body: list[str]) -> Block:
    curls: list[Command] = []
    continued = False
    for offset, line in enumerate(body, start + 1):
        stripped = line.strip()
        if continued:
            curls[-1].text += "\n" + line
        elif stripped.startswith("#"):
            if curls:
                curls[-1].shown.append(stripped)
        elif re.search(r"(^|\|\s*)curl ", stripped):
            curls.append(Command(offset, line))
        continued = bool(curls) and stripped.endswith("\\") and not stripped.startswith("#")
    for command in curls:  # a comment at the end of the command's last line is shown too
        last = command.text.splitlines()[-1]
        comment = re.search(r"\s#\s.*$", last)
        if comment:
            command.shown.insert(0, comment.group().strip())
    return Block(where, "\n".join(body), curls)


def _instrumented(script: str, url: str, workdir: Path) -> str:
    """The block with our server, our interpreter and a private /tmp; each curl's reply framed
    by a marker and its status."""
    script = SERVER.sub(url, script)
    # /tmp first: the interpreter itself may live under /tmp (a checkout there).
    script = script.replace("/tmp/", f"{workdir}/").replace(".venv/bin/python", sys.executable)
    wrapper = (
        "curl() { command curl -sS -w '\\n" + MARK + ' %{http_code}\\n\' "$@"; }\n'
        "set -e -o pipefail\n"
    )
    return wrapper + script


def _replies(output: str) -> list[tuple[int, str]]:
    replies, body = [], []
    for line in output.splitlines():
        if line.startswith(MARK):
            replies.append((int(line.split()[1]), "\n".join(body)))
            body = []
        else:
            body.append(line)
    return replies


def _pairs(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _pairs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _pairs(item)


def _matches(shown: str, actual: Any) -> bool:
    """``shown`` (a JSON string or a number as written) equals ``actual`` to its digits."""
    if shown.startswith('"'):
        text = json.loads(shown)
        if text.endswith("..."):  # a long value cut short: its start
            return isinstance(actual, str) and actual.startswith(text[:-3])
        return text == actual
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    digits = len(shown.split("e")[0].partition(".")[2])
    exponent = int(shown.split("e")[1]) if "e" in shown else 0
    return abs(float(shown) - actual) <= 0.5 * 10.0 ** (exponent - digits) + 1e-12


def _check(block: Block, command: Command, status: int, body: str) -> list[str]:
    where = f"{block.where.split(':')[0]}:{command.line}"
    shown = " ".join(command.shown)
    bare = BARE_STATUS.match(command.shown[0]) if command.shown else None
    pairs = SHOWN_PAIR.findall(shown)
    if bare:
        expected = int(bare.group(1))
        return [] if status == expected else [f"{where}: status {status}, the doc shows {expected}"]
    failures = []
    shows_error = any(key in ("error", "status") for key, _ in pairs)
    if not shows_error and not 200 <= status < 300:
        failures.append(f"{where}: status {status}: {body[:300]}")
    if not pairs:
        return failures
    text = body.replace("\r", "")
    if text.startswith("HTTP/"):  # curl -i: the headers first
        text = text.partition("\n\n")[2]
    try:
        reply = json.loads(text)
    except ValueError:
        return [*failures, f"{where}: the doc shows JSON, the reply is not: {text[:300]}"]
    found = list(_pairs(reply))
    for key, value in pairs:
        if not any(k == key and _matches(value, v) for k, v in found):
            actual = sorted({json.dumps(v)[:80] for k, v in found if k == key})[:5]
            failures.append(f'{where}: the doc shows "{key}": {value}; the reply has {actual}')
    return failures


BLOCKS = example_blocks()


# ---- Python examples
def python_blocks() -> list[tuple[str, str]]:
    return [
        (f"{name}:{start}", "\n".join(body) + "\n")
        for name, start, body in fenced_blocks(("python",))
        if any("127.0.0.1:8000" in line for line in body)
    ]


def shown_outputs(source: str) -> tuple[str, list[str]]:
    """``source`` with each top-level statement that a comment follows made to print (a bare
    expression prints its ``repr``, as a REPL does), and those comments in order."""
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    tree = ast.parse(source)
    shown = []
    for index, node in enumerate(tree.body):
        comment = comments.get(node.end_lineno)
        if not isinstance(node, ast.Expr) or comment is None or not _is_output(comment):
            continue
        shown.append(comment)
        call = node.value
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "print"):
            printed = ast.Call(ast.Name("repr", ast.Load()), [call], [])
            tree.body[index] = ast.Expr(ast.Call(ast.Name("print", ast.Load()), [printed], []))
    return ast.unparse(ast.fix_missing_locations(tree)), shown


def _is_output(comment: str) -> bool:
    """A value as Python prints it, not a remark ("binary tensors by default")."""
    return comment[:1] in "[{(<'\"-0123456789" or comment.startswith(
        ("b'", "True", "False", "None")
    )


def _shows(comment: str, line: str) -> bool:
    """``line`` is what ``comment`` shows, ``...`` standing for anything."""
    pattern = ".*".join(re.escape(part) for part in comment.split("..."))
    return re.fullmatch(pattern, line) is not None


PYTHON_BLOCKS = python_blocks()


@pytest.mark.parametrize(("where", "source"), PYTHON_BLOCKS, ids=[w for w, _ in PYTHON_BLOCKS])
def test_a_documented_python_example_prints_what_it_shows(
    where: str, source: str, server_url: str, reader_dir: Path
):
    script, shown = shown_outputs(source.replace("127.0.0.1:8000", server_url.split("//")[1]))
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=reader_dir / "repo",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{where}: exit {run.returncode}\n{run.stderr[-2000:]}"
    printed = run.stdout.splitlines()
    assert len(printed) == len(shown), (where, printed)
    wrong = [
        f"shows {c!r}, prints {p!r}"
        for c, p in zip(shown, printed, strict=True)
        if not _shows(c, p)
    ]
    assert not wrong, f"{where}: " + "; ".join(wrong)


def test_the_examples_are_found():
    # The finder still sees the examples (the README's and the API guide's at least).
    assert len(BLOCKS) >= 10
    assert sum(len(block.curls) for block in BLOCKS) >= 20
    assert sum(bool(command.shown) for block in BLOCKS for command in block.curls) >= 15
    assert len(PYTHON_BLOCKS) >= 2 and all(shown_outputs(s)[1] for _, s in PYTHON_BLOCKS)


def test_the_examples_use_the_readmes_venv():
    """A bare ``python`` or ``pip`` is the system's: the README installs into ``.venv``."""
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            command = line.strip()
            assert not re.match(r"(python3?|pip3?) ", command) or "-m venv" in command, (
                f"{path.name}:{number}: use .venv/bin/{command.split()[0]} as the README does"
            )


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine (apt-get install curl)")
    # Started as docs/models.md says its tritonclient example needs: with model control on.
    process, url = start_server(
        REPO_ROOT / "models", model_names=json.dumps(MODELS), model_control="true"
    )
    try:
        yield url
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def reader_dir(tmp_path_factory) -> Path:
    """A reader's checkout: ``app/`` (files the examples upload) and ``../shared`` beside it;
    its ``tmp/`` stands for ``/tmp``, shared by the blocks in their order (a block writes the
    bodies the next ones send)."""
    root = tmp_path_factory.mktemp("reader")
    (root / "repo").mkdir()
    (root / "repo" / "app").symlink_to(REPO_ROOT / "app")
    (root / "shared").symlink_to(REPO_ROOT.parent / "shared")
    (root / "tmp").mkdir()
    return root


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_a_documented_example_works_as_shown(block: Block, server_url: str, reader_dir: Path):
    script = _instrumented(block.script, server_url, reader_dir / "tmp")
    run = subprocess.run(
        ["bash", "-c", script], cwd=reader_dir / "repo", capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"{block.where}: exit {run.returncode}\n{run.stderr[-2000:]}"
    replies = _replies(run.stdout)
    assert len(replies) == len(block.curls), f"{block.where}: {len(replies)} replies"
    failures = [
        failure
        for command, (status, body) in zip(block.curls, replies, strict=True)
        for failure in _check(block, command, status, body)
    ]
    assert not failures, "\n".join(failures)
