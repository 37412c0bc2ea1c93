"""hostsetup: turn fresh Linux servers into working Docker hosts over SSH."""

__version__ = "0.1.0"
