"""Lets `python -m scimhost` behave like the `scimhost` command."""

from scimhost.cli import main

raise SystemExit(main())
