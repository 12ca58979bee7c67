"""Subcommands of the ``tokenfleet`` CLI: one module each, with ``configure(parser)`` and ``run(args)``."""
