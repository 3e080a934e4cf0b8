"""``fsedp report`` and the paper grid (being written; see issue 7)."""


def add_parsers(sub) -> None:
    """Add this module's subcommands to the ``fsedp`` parser (none yet)."""
