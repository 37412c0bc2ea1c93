"""Rendering files from the Jinja2 templates shipped in ``hostsetup.templates``."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Undefined


def to_json(value: Any) -> str:
    """JSON for templates; unlike Jinja's ``tojson`` it never HTML-escapes ``<>&'``."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # a missing variable is an error, not "null"
    return json.dumps(value, ensure_ascii=False)


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("hostsetup.templates", "."),
                      undefined=StrictUndefined, keep_trailing_newline=True,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["json"] = to_json
    return env


def render(name: str, **context: Any) -> str:
    """Render template ``name`` with ``context``; a missing variable is an error."""
    return environment().get_template(name).render(**context)
