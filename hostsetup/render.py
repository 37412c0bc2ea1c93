"""Rendering files from the Jinja2 templates.

The templates live in ``templates/`` at the top of the repository. A wheel ships them as
the package ``hostsetup.templates``; run from the source tree (``python3 -m hostsetup``
in a clone imports the tree, not the wheel) they are read from ``templates/`` beside it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined, Undefined

SOURCE_TREE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def to_json(value: Any) -> str:
    """JSON for templates; unlike Jinja's ``tojson`` it never HTML-escapes ``<>&'``."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # a missing variable is an error, not "null"
    return json.dumps(value, ensure_ascii=False)


def json_object(text: str) -> dict[str, Any]:
    """``text`` as a JSON object; ValueError saying "not valid JSON (...)" or "not a JSON object, got X"."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object, got {type(value).__name__}")
    return value


def templates_directory() -> Path:
    """Where the templates are on disk: the installed ``hostsetup.templates`` package, else the source
    tree's ``templates/`` (``hostsetup cloud-init --build-artifact`` copies them from here)."""
    spec = find_spec("hostsetup.templates")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return SOURCE_TREE_TEMPLATES


def template_loader() -> BaseLoader:
    """The installed ``hostsetup.templates`` package, else the source tree's ``templates/``."""
    if find_spec("hostsetup.templates") is not None:
        return PackageLoader("hostsetup.templates", ".")
    if (SOURCE_TREE_TEMPLATES / "docker.sources.j2").is_file():
        return FileSystemLoader(str(SOURCE_TREE_TEMPLATES))
    raise RuntimeError(f"hostsetup's templates are missing: no hostsetup.templates package and no "
                       f"{SOURCE_TREE_TEMPLATES}; reinstall hostsetup")


@cache
def environment() -> Environment:
    env = Environment(loader=template_loader(),
                      undefined=StrictUndefined, keep_trailing_newline=True,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["json"] = to_json
    return env


def render(name: str, **context: Any) -> str:
    """Render template ``name`` with ``context``; a missing variable is an error."""
    return environment().get_template(name).render(**context)
