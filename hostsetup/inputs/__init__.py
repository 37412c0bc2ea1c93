"""The one validation layer: everything a user gives hostsetup (flags, ``HOSTSETUP_*`` variables,
configuration files, inventories, templates, file paths) is read and checked here, before any
host is touched. A refusal is an ``InputError``: one line naming the source (``file:line``, the
flag or the variable) and what to do; the program exits 2 with it.

* ``hostsetup.inputs.files``: reading files safely (existence, size, UTF-8, YAML with limits on
  aliases, depth and size, duplicate keys refused, line numbers kept);
* ``hostsetup.inputs.values``: values (whole numbers in a range, ports, user names, host strings,
  paths to read or write, "did you mean");
* ``hostsetup.inputs.config``: the configuration layers, key by key against the defaults.
"""

from hostsetup.errors import HostsetupError


class InputError(HostsetupError):
    """Bad input, found before any host was touched: the message names its source and the fix."""


__all__ = ["InputError"]
