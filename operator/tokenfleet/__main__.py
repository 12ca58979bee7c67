"""`python -m tokenfleet` runs the command-line interface."""

from tokenfleet.cli import main

raise SystemExit(main())
