"""Secrets: the one place that knows what must never be printed, logged or reported.

Two mechanisms, applied together by ``mask``:

- values registered at run time (the sudo password, the password part of every proxy or
  mirror URL in the settings): replaced wherever they appear, whatever they contain
  (spaces, quotes, ``@``);
- credentials recognisable in any text: the password of ``user:password@host``, with or
  without a ``scheme://`` in front.

Every output path (step lines, plan text, errors, ``--json``, ``-d`` debug logging) goes
through ``mask``; ``install_log_filter`` covers the logging module.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"

_lock = threading.Lock()
_known: set[str] = set()
_url_passwords: set[str] = set()  # the registered values that are URL passwords
MIN_SECRET = 3  # shorter values would mask ordinary words everywhere

# user:password@host, optionally after scheme://. The password runs to the last "@" that is
# followed by a host name, so it may itself hold "@", ":" or "'" (a sub-delimiter URLs allow
# there: "http://u:it's@proxy" is a working proxy URL); not whitespace, '"', "<", ">" or "/"
# (a registered password is masked whatever it holds).
_USERINFO = re.compile(
    r"(?P<head>(?:\b[a-zA-Z][a-zA-Z0-9+.-]*://)|(?<![\w.%+/-]))"
    r"(?P<user>[\w.%+~-]+):(?P<password>[^\s\"<>/]+)@(?!sha\d+:)(?=[\w\[][\w.:\[\]-]*)")


# "password": "..." (JSON, a Python dict's repr, key=value): Invoke's -d debug dump of the
# configuration shows the sudo password this way before anything could register it.
_KEYED = re.compile(r"""(?P<key>['"]?\b(?:password|passphrase|passwd|secret|token|auth)['"]?\s*[:=]\s*)"""
                    r"""(?P<quote>['"])(?P<value>(?:\\.|(?!(?P=quote)).)*)(?P=quote)""", re.IGNORECASE)


def register(*values: str | None) -> None:
    """Mask these exact values from now on (empty values are ignored)."""
    with _lock:
        _known.update(v for v in values if v and len(v.strip()) >= MIN_SECRET)


def register_url_credentials(urls: Iterable[str]) -> None:
    """Register the password (raw and percent-decoded) of each URL that carries one."""
    for url in urls:
        try:
            password = urlsplit(url if "://" in url else f"//{url}").password
        except ValueError:
            password = None
        if password:
            register(password, unquote(password))
            with _lock:
                _url_passwords.update(p for p in (password, unquote(password)) if len(p) >= MIN_SECRET)


def known() -> tuple[str, ...]:
    with _lock:
        return tuple(sorted(_known, key=len, reverse=True))


def mask(text: str) -> str:
    """``text`` with every registered secret and every URL password replaced by ``***``."""
    if not text:
        return text
    for secret in known():
        text = text.replace(secret, MASK)
    text = _KEYED.sub(lambda m: f"{m['key']}{m['quote']}{MASK if m['value'] else ''}{m['quote']}", text)
    return _USERINFO.sub(lambda m: f"{m['head']}{m['user']}:{MASK}@", text)


def holds_credentials(text: str) -> bool:
    """Whether ``text`` carries credentials (a URL password, a ``"password": ...`` value, a
    registered URL password): such a file is written 0600, not 0644. The sudo password and other
    bare registered values do not count: any word may happen to equal one."""
    if _USERINFO.search(text) or _KEYED.search(text):
        return True
    with _lock:
        return any(secret in text for secret in _url_passwords)


def file_mode(content: str) -> str:
    """The mode hostsetup gives a file it writes: private when it holds credentials."""
    return "0600" if holds_credentials(content) else "0644"


def mask_data(value: Any) -> Any:
    """``mask`` applied to every string inside JSON-like data (dicts, lists, strings)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v) for v in value]
    return value


class MaskingStream:
    """A text stream that masks what is written to it: installed over stdout and stderr, so that
    every line hostsetup (or a library) prints goes through ``mask``."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, buffer, ...
        return getattr(self._stream, name)


def install_stream_masks() -> None:
    """Mask ``sys.stdout`` and ``sys.stderr`` (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskingStream):
            setattr(sys, name, MaskingStream(stream))


class MaskingFilter(logging.Filter):
    """Masks secrets in every log record (Invoke's and Fabric's ``-d`` debug output too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's own problem
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_filter() -> None:
    """Attach ``MaskingFilter`` to every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
