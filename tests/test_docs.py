"""The example replies in README.md and docs/*.md name the versions the server answers with: a
retrain adds a version (and the server then answers with it), so a doc written before it goes
stale without anyone noticing (as happened: mnist 3, sentiment 1 in the examples)."""

from __future__ import annotations

import re

import pytest

from tests.paths import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# A documented reply: {"model":"mnist","version":4,...} or KServe's model_name / model_version.
REPLY = re.compile(
    r'"model":"(?P<name>\w+)","version":(?P<version>\d+)'
    r'|"model_name":"(?P<kname>\w+)","model_version":"(?P<kversion>\d+)"'
)
VERSION_URL = re.compile(r"/v1/models/(?P<name>\w+)/versions/(?P<version>\d+)/report")


def default_version(name: str) -> int:
    """The version the server answers with when none is asked for: the highest one (no
    committed model pins another with a config.json)."""
    folder = REPO_ROOT / "models" / name
    assert not (folder / "config.json").exists(), "update this test: a model pins a version"
    return max(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def documented_replies() -> list[tuple[str, int, str, int]]:
    found = []
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.lstrip().startswith("#"):  # the replies shown as comments after a command
                continue
            for match in [*REPLY.finditer(line), *VERSION_URL.finditer(line)]:
                groups = match.groupdict()
                name = groups.get("name") or groups["kname"]
                version = int(groups.get("version") or groups["kversion"])
                found.append((f"{path.name}:{number}", version, name, default_version(name)))
    return found


def test_the_docs_show_replies():
    assert len(documented_replies()) >= 10  # the pattern still finds them


@pytest.mark.parametrize(("where", "shown", "name", "served"), documented_replies())
def test_an_example_reply_names_the_served_version(where, shown, name, served):
    assert shown == served, f"{where}: shows {name} version {shown}; the server answers {served}"
