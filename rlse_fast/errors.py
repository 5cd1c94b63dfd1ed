"""Errors that reach the user as one line and an exit code."""


class UserError(Exception):
    """Bad usage or bad input: printed as one line, exit code 2.

    The message says what is wrong and how to fix it.
    """

    exit_code = 2


class RunFailure(Exception):
    """A failure while running on valid input: one line, exit code 1."""

    exit_code = 1
