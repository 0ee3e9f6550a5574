"""``python -m genpercept_lessons COMMAND``: the course's command line (genpercept_lessons/cli/main.py)."""
import sys

from genpercept_lessons.cli.main import main

sys.exit(main())
