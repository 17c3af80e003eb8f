"""``python -m claude_orchestrator.supervisor ...``: see :mod:`.entry`."""

from __future__ import annotations

import sys

from .entry import main

sys.exit(main())
