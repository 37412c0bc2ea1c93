"""Unit-test isolation: a value one test registers as a secret is not masked in the next one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hostsetup import secrets


@pytest.fixture(autouse=True)
def registered_secrets_are_per_test() -> Iterator[None]:
    known, url_passwords = set(secrets._known), set(secrets._url_passwords)
    yield
    with secrets._lock:
        secrets._known.clear()
        secrets._known.update(known)
        secrets._url_passwords.clear()
        secrets._url_passwords.update(url_passwords)
