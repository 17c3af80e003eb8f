"""Collect the documentation's commands as tests (tests/docs_harness.py says how they run).

At the repository's root so that README.md, ORCHESTRATOR_README.md, docs/ and
the plugin's skill are collected; the package's own tests keep tests/conftest.py.
"""

import pytest
from sybil import Sybil

from tests.docs_harness import DOCUMENTS, BlockParser, ReasonedSkipParser, World


@pytest.fixture(scope="module")
def doc_world(tmp_path_factory):
    """One document's :class:`~tests.docs_harness.World` (module scope: a Sybil document is a module)."""
    world = World(tmp_path_factory.mktemp("doc"))
    yield world
    world.close()


pytest_collect_file = Sybil(
    parsers=[ReasonedSkipParser(), BlockParser()],
    patterns=list(DOCUMENTS),
    fixtures=["doc_world"],
    name="docs",
).pytest()


def pytest_collection_modifyitems(items):
    """A document's examples run in order in one process (make test runs pytest-xdist with --dist loadgroup)."""
    for item in items:
        if item.nodeid.endswith(".md") or ".md::" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
