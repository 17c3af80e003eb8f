"""Which chromium the browser tests and the web console's benchmark drive (Playwright's ``executable_path``).

The system's chromium, never a downloaded one: ``make install-browser`` installs
Debian's ``chromium`` package.
"""

from __future__ import annotations

import os
import shutil

#: Debian's chromium: the real binary, then the launcher script (which execs it with /etc/chromium.d's flags).
DEBIAN_CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def chromium_executable() -> str | None:
    """The chromium to drive: ``$ORCHESTRATOR_CHROMIUM``, Debian's, or a ``chromium`` or ``chromium-browser``
    on PATH; None if there is none (or ``$ORCHESTRATOR_CHROMIUM`` is not an executable file)."""
    wanted = os.environ.get("ORCHESTRATOR_CHROMIUM")
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    for path in DEBIAN_CHROMIUM:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")
