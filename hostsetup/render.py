"""Rendering files from the Jinja2 templates shipped in ``hostsetup.templates``."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("hostsetup.templates", "."),
                       undefined=StrictUndefined, keep_trailing_newline=True,
                       autoescape=False)


def render(name: str, **context: Any) -> str:
    """Render template ``name`` with ``context``; a missing variable is an error."""
    return environment().get_template(name).render(**context)
