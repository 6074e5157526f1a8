"""Apache-only tests: configuration errors (`apache2 -t`), graceful restarts, MPMs.
They reuse tests/harness to stage and run Debian's apache2 with mod_oxwsgi.so."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
