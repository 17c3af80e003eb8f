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


#: Test files run as one unit on one worker, and first: their tests share one chromium and one console (a
#: long unit started last would be the suite's tail).
GROUPED_FILES = ("tests/test_web_browser.py",)


def pytest_collection_modifyitems(items):
    """:data:`GROUPED_FILES` first (a stable sort: the rest keep their order, the documents first)."""
    items.sort(key=lambda item: item.nodeid.partition("::")[0] not in GROUPED_FILES)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: only when make test runs it (-n N)
def pytest_xdist_make_scheduler(config, log):
    """Schedule a document's examples as one unit, in order, on one worker (they share its world, and a
    skip marker acts on the next example), and so each of :data:`GROUPED_FILES`; every other test is a
    unit of its own, as with ``--dist load``.

    (``--dist loadgroup`` with an ``xdist_group`` mark would say the same, but pytest-xdist 3.8 renames the
    items through ``_nodeid``, which pytest 9 no longer reads, so the groups are lost.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class DocumentScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.partition("::")[0]
            return path if path.endswith(".md") or path in GROUPED_FILES else nodeid

    return DocumentScheduling(config, log)
