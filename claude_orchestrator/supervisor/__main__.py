"""``python -m claude_orchestrator.supervisor ...``: see :mod:`.entry`."""

import sys

from .entry import main

sys.exit(main())
