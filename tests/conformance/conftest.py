"""Makes tests/harness importable and loads its pytest plugin (fixtures
`server`, `token`, server parametrization, per-server summary)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.pytest_plugin import *  # noqa: E402,F401,F403
from harness.pytest_plugin import (  # noqa: E402,F401 - hooks must be module attributes
    pytest_collection_modifyitems, pytest_configure, pytest_generate_tests,
    pytest_runtest_logreport, pytest_sessionstart, pytest_terminal_summary)
