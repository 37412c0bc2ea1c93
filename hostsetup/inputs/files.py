"""Reading the user's files safely: a bounded size, UTF-8 text, and YAML parsed with limits.

YAML is composed by PyYAML's safe loader and turned into Python here, node by node, so that:
aliases cannot expand without bound (an "alias bomb" stops at ``MAX_NODES``), a recursive alias
is refused instead of recursing, nesting is bounded, a key given twice is refused (PyYAML keeps
the last one silently), merge keys (``<<: *base``) work, and every mapping remembers the line of
each key (``Located.lines``) so that later checks can name ``file:line``.
"""

from __future__ import annotations

import getpass
import json
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from hostsetup.inputs import InputError

MAX_CONFIG_BYTES = 1 << 20          # a settings file, a template
MAX_INVENTORY_BYTES = 1 << 20       # ~25,000 hosts; a bigger file takes seconds to parse
MAX_EXPANDED = 1_000_000            # YAML values once aliases are expanded (a 4 MiB file has fewer)
MAX_DEPTH = 64
MERGE_TAG = "tag:yaml.org,2002:merge"
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Located(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line (1-based) of each key, and its own."""

    lines: dict[str, int]
    line: int = 0


def line_of(mapping: Any, key: str) -> int | None:
    """The line of ``key`` in a mapping read from YAML (None when not known)."""
    return getattr(mapping, "lines", {}).get(key)


def where(source: str, mapping: Any = None, key: str | None = None) -> str:
    """``file:line`` of ``key`` in ``mapping`` (of the mapping itself without a key), or ``file``."""
    line = line_of(mapping, key) if key is not None else getattr(mapping, "line", 0)
    return f"{source}:{line}" if line else source


def read_secret(path: str | Path, what: str) -> str:
    """A password kept in a file: its first line (a final carriage return dropped); empty is refused."""
    secret = read_text(path, what, limit=64 * 1024).split("\n", 1)[0].removesuffix("\r")
    if not secret:
        raise InputError(f"{what} {path} is empty")
    return secret


def prompt_secret(prompt: str, no_terminal: str) -> str:
    """A password typed on the terminal (not echoed); ``no_terminal`` is the error when there is none."""
    if not sys.stdin.isatty():
        raise InputError(no_terminal)
    secret = getpass.getpass(prompt)
    if not secret:
        raise InputError("no password given")
    return secret


def read_text(path: str | Path, what: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """The text of a file the user named: it must exist, be a regular readable file, be at most
    ``limit`` bytes and be UTF-8 (a byte-order mark is dropped)."""
    file = Path(path).expanduser()
    try:
        if file.is_dir():
            raise InputError(f"{what} {path} is a directory, not a file")
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except PermissionError:
        raise InputError(f"{what} {path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputError(f"{what} {path} is larger than {limit // 1024} KiB; is it the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as "
                         "UTF-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise InputError(f"{path}:{line}: a NUL byte: this is not a text file")
    return text


class _Builder:
    """YAML nodes to Python, with the limits above."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.scalars = SafeConstructor()
        self.path: set[int] = set()

    def fail(self, node: yaml.Node, message: str) -> InputError:
        return InputError(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def expanded_size(self, root: yaml.Node) -> int:
        """How many values ``root`` stands for once every alias is expanded, computed without
        expanding (each node once); a recursive alias is refused here."""
        sizes: dict[int, int] = {}
        on_path: set[int] = set()
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, children_done = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                sizes[id(node)] = 1
                continue
            if children_done:
                on_path.discard(id(node))
                children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) \
                    else list(node.value)
                sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
                continue
            if id(node) in sizes:
                continue
            if id(node) in on_path:
                raise self.fail(node, "an alias refers to a value that contains it (a recursive alias)")
            on_path.add(id(node))
            stack.append((node, True))
            children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) \
                else list(node.value)
            stack.extend((child, False) for child in children if id(child) not in sizes)
        return sizes[id(root)]

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.scalars.construct_object(node, deep=True)
            except ConstructorError as exc:
                raise self.fail(node, str(exc.problem or exc)) from None
        if id(node) in self.path:
            raise self.fail(node, "an alias refers to a value that contains it (a recursive alias)")
        self.path.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, depth + 1) for child in node.value]
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, depth)
            raise self.fail(node, f"cannot read a {type(node).__name__}")
        finally:
            self.path.discard(id(node))

    def mapping(self, node: yaml.MappingNode, depth: int) -> Located:
        out = Located()
        out.lines, out.line = {}, node.start_mark.line + 1
        merged: list[Located] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                value = self.build(value_node, depth + 1)
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(s, Mapping) for s in sources):
                    raise self.fail(key_node, "'<<' merges mappings only")
                merged += sources
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be a plain value, not a list or mapping")
            key = self.build(key_node, depth + 1)
            name = str(key).lower() if isinstance(key, bool) else str(key)
            if name in out.lines:
                raise self.fail(key_node, f"{name!r} is given twice (first on line {out.lines[name]})")
            out[name] = self.build(value_node, depth + 1)
            out.lines[name] = key_node.start_mark.line + 1
        for source in merged:  # explicit keys win over merged ones; earlier merges over later ones
            for key, value in source.items():
                if key not in out:
                    out[key] = value
                    out.lines[key] = getattr(source, "lines", {}).get(key, out.line)
        return out


def parse_yaml(text: str, source: str) -> Any:
    """One YAML document as Python data (mappings are ``Located``); None when empty."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{source}{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: nested too deeply to read") from None
    if node is None:
        return None
    builder = _Builder(source)
    size = builder.expanded_size(node)
    if size > MAX_EXPANDED:
        raise InputError(f"{source}: aliases expand to {size} values, more than {MAX_EXPANDED} "
                         "(an alias bomb?); refusing to read it")
    return builder.build(node)


def parse_toml(text: str, source: str) -> dict[str, Any]:
    parsed: dict[str, Any] = _parse(lambda: tomllib.loads(text), source, tomllib.TOMLDecodeError,
                                    lambda exc: f"{source}: not valid TOML: {exc}")
    return parsed


def parse_json(text: str, source: str) -> Any:
    return _parse(lambda: json.loads(text), source, json.JSONDecodeError,
                  lambda exc: f"{source}:{exc.lineno}: not valid JSON: {exc.msg}")


def _parse(load: Callable[[], Any], source: str, error: type[Exception],
           message: Callable[[Any], str]) -> Any:
    """``load()``, its own error and a nesting too deep for Python both refused in one line."""
    try:
        return load()
    except error as exc:
        raise InputError(message(exc)) from None
    except RecursionError:
        raise InputError(f"{source}: nested too deeply to read") from None


def load_mapping(path: str | Path, what: str, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """A YAML (or ``.json`` / ``.toml``) file whose top level is a mapping; an empty file is ``{}``."""
    text = read_text(path, what, limit)
    source = str(path)
    suffix = Path(path).suffix
    data = (parse_toml(text, source) if suffix == ".toml" else parse_json(text, source) if suffix == ".json"
            else parse_yaml(text, source))
    if data is None:
        return Located()
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: the top level must be a mapping of settings (key: value), "
                         f"not a {type_name(data)}")
    return data if isinstance(data, dict) else dict(data)


def type_name(value: Any) -> str:
    """What a user calls the type of ``value``."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number"
    if isinstance(value, float):
        return "decimal number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    if value is None:
        return "empty value"
    return type(value).__name__
