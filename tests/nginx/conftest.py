"""nginx-only tests: `nginx -t` errors, Python off the event loop, reloads under load,
the in-flight cap. They reuse tests/harness to stage and run Debian's nginx."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
