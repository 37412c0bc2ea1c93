"""hostsetup.secrets: what is masked in text, and what is not."""

from __future__ import annotations

import pytest

from hostsetup.secrets import mask, mask_data


@pytest.mark.parametrize(("text", "masked"), [
    ('"http-proxy": "http://user:s3cret@proxy:3128"', '"http-proxy": "http://user:***@proxy:3128"'),
    ("http://user:it's@proxy:3128", "http://user:***@proxy:3128"),        # "'" is allowed in a password
    ("echo 'http://u:p@h:1' x", "echo 'http://u:***@h:1' x"),
    ("https://u:p%2Fw@mirror/path", "https://u:***@mirror/path"),
    ("user:pw@host", "user:***@host"),
    ("ssh://git@github.com/x", "ssh://git@github.com/x"),                 # no password: nothing to mask
])
def test_mask(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_mask_data() -> None:
    data = {"script": "cat <<EOF\n{\"http-proxy\": \"http://u:pw@p:3128\"}\nEOF", "n": 1, "l": ["a:b@c"]}
    assert mask_data(data) == {"script": "cat <<EOF\n{\"http-proxy\": \"http://u:***@p:3128\"}\nEOF", "n": 1,
                               "l": ["a:***@c"]}


def test_everything_printed_goes_through_the_mask(capsys) -> None:
    import sys

    from hostsetup import secrets

    secrets.register("st0dout-secret")
    original = sys.stdout
    try:
        secrets.install_stream_masks()
        secrets.install_stream_masks()  # idempotent
        print("error: apt said st0dout-secret and http://u:pw@proxy:3128")
        sys.stdout.flush()
    finally:
        sys.stdout = original
    out = capsys.readouterr().out
    assert "st0dout-secret" not in out and "pw@" not in out and out.count("***") == 2
