"""Errors a command reports as one line (``xrh.cli``): a module of its own, so that commands in any package raise the
class the command line catches."""


class UsageError(Exception):
    """A command given the wrong arguments: one line and exit code 2, like argparse's own usage errors."""
