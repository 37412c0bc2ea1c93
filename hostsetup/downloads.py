"""Which download failed, and how, read from a package manager's (or curl's) output.

So that an error names the URL that failed and what the server answered, in one line,
instead of the last lines of apt's or dnf's output.
"""

from __future__ import annotations

import re
from http import HTTPStatus

# apt-get install: "E: Failed to fetch URL  404  Not Found [IP: 172.20.0.2 443]"
_APT_FETCH = re.compile(r"^E: Failed to fetch (\S+)\s+(.+?)\s*(?:\[IP: [^\]]*\])?\s*$", re.M)
# apt-get update: "Err:2 URI SUITE FILE" then, indented, "404  Not Found [IP: ...]"
_APT_ERR = re.compile(r"^Err:\d+ (\S+) (.+?)\s*\n\s+(.+?)\s*(?:\[IP: [^\]]*\])?\s*$", re.M)
# dnf/yum (librepo): "Status code: 404 for URL (IP: 172.20.0.2)"
_DNF_STATUS = re.compile(r"Status code: (\d{3}) for (\S+)")
# librepo: "Curl error (6): Couldn't resolve host name for URL [details]"
_DNF_CURL = re.compile(r"Curl error \(\d+\): (.+?) for (\S+)")
# curl -f: "curl: (22) The requested URL returned error: 404"
_CURL_STATUS = re.compile(r"curl: \(22\) The requested URL returned error: (\d{3})")
_CURL_ERROR = re.compile(r"^curl: \((\d+)\) (.+?)\s*$", re.M)

INDEX_FILES = ("InRelease", "Release", "Release.gpg")


def status_text(code: int | str) -> str:
    """``404`` -> ``'404 Not Found'`` (the code alone when it is not a known one)."""
    try:
        return f"{int(code)} {HTTPStatus(int(code)).phrase}"
    except ValueError:
        return str(code)


def _apt_index_url(uri: str, rest: str) -> str:
    """apt names an index file ``URI SUITE FILE``; its URL is ``URI/dists/SUITE/FILE``."""
    words = rest.split()
    if len(words) == 2 and words[1] in INDEX_FILES:
        return f"{uri.rstrip('/')}/dists/{words[0]}/{words[1]}"
    return f"{uri} {rest}"


def failed_download(output: str) -> tuple[str, str] | None:
    """(URL, what went wrong: ``'404 Not Found'``) of the last failed download that apt, dnf or
    yum report in ``output``; None when it names none."""
    found: list[tuple[int, str, str]] = []
    for m in _APT_FETCH.finditer(output):
        found.append((m.start(), m.group(1), " ".join(m.group(2).split())))
    for m in _APT_ERR.finditer(output):
        found.append((m.start(), _apt_index_url(m.group(1), m.group(2)), " ".join(m.group(3).split())))
    for m in _DNF_STATUS.finditer(output):
        found.append((m.start(), m.group(2), status_text(m.group(1))))
    for m in _DNF_CURL.finditer(output):
        found.append((m.start(), m.group(2), m.group(1)))
    if not found:
        return None
    _, url, reason = max(found)
    return url, reason


def curl_failure(output: str) -> str | None:
    """What ``curl -f`` said went wrong: ``'404 Not Found'``, or its own error message."""
    status = _CURL_STATUS.search(output)
    if status:
        return status_text(status.group(1))
    error = _CURL_ERROR.search(output)
    return f"{error.group(2)} (curl error {error.group(1)})" if error else None
