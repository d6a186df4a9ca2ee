"""Strict parsing of the routes' query parameters.

Every function takes the request's query arguments (any mapping with `get`,
so tests pass a dict) and returns a plain value or raises
`tensorboard.errors.InvalidArgumentError` (400) whose message names the
parameter and what it must be. Nothing here touches data.
"""

import re

from tensorboard import errors

# An integer is an optional minus sign and ASCII digits, nothing else: no
# spaces, no '+', no '--5', no leading zeros, no Unicode digits. 19 digits
# hold every int64 step.
_INTEGER = re.compile(r"(?:0|-?[1-9][0-9]{0,18})\Z")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def string(args, name):
    """The parameter as given (run and tag names may hold any character)."""
    value = args.get(name)
    if value is None:
        raise errors.InvalidArgumentError("missing parameter %r" % name)
    return value


def integer(args, name, *, required=True, minimum=INT64_MIN, maximum=INT64_MAX):
    """A decimal integer in [minimum, maximum]; None when absent and not required."""
    value = args.get(name)
    if value is None:
        if required:
            raise errors.InvalidArgumentError("missing parameter %r" % name)
        return None
    if not _INTEGER.match(value):
        raise errors.InvalidArgumentError(
            "parameter %r must be a decimal integer, got %s" % (name, _shown(value))
        )
    number = int(value)
    if not minimum <= number <= maximum:
        raise errors.InvalidArgumentError(
            "parameter %r must be in %d..%d, got %d" % (name, minimum, maximum, number)
        )
    return number


def choice(args, name, choices, default):
    """One of `choices` (a tuple of strings); `default` when absent."""
    value = args.get(name)
    if value is None:
        return default
    if value not in choices:
        raise errors.InvalidArgumentError(
            "parameter %r must be one of %s, got %s"
            % (name, ", ".join(repr(c) for c in choices), _shown(value))
        )
    return value


def _shown(value, limit=40):
    """repr of a user's value, cut to `limit` characters for the message."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")
