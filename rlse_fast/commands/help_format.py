"""The `--help` layout of the commands: each option's default printed once."""
from __future__ import annotations

import argparse


class DefaultsOnce(argparse.HelpFormatter):
    """Append "(default: X)" to an option's help unless the help already says its default, the
    default is None (the help then explains what happens), or the option is a plain flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or any(action.default is v for v in (None, False, True, argparse.SUPPRESS))
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"
