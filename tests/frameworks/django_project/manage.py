#!/usr/bin/env python
"""Used by the harness (as root, with the venv python) to migrate the sqlite
DB and create the admin user before the server starts."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
