"""Docker CE repository mirrors: presets and validation of user-given URLs.

Every preset serves the same tree as download.docker.com under its base URL
(``<base>/linux/<distro>/...``).
"""

from __future__ import annotations

from urllib.parse import urlparse

from hostsetup.errors import HostsetupError
from hostsetup.textsafety import url_problem

PRESETS: dict[str, str] = {
    # Docker's own repository (docs.docker.com/engine/install/).
    "official": "https://download.docker.com",
    # Aliyun's help page: yum-config-manager --add-repo
    # https://mirrors.aliyun.com/docker-ce/linux/centos/docker-ce.repo (also docker-install#379).
    "aliyun": "https://mirrors.aliyun.com/docker-ce",
    # TUNA help page "Docker CE 软件仓库": https://mirrors.tuna.tsinghua.edu.cn/docker-ce.
    "tuna": "https://mirrors.tuna.tsinghua.edu.cn/docker-ce",
    # USTC mirror help (mirrors.ustc.edu.cn/help/docker-ce.html).
    "ustc": "https://mirrors.ustc.edu.cn/docker-ce",
    # Tencent Cloud mirror help; added to get.docker.com in docker-install PR #408.
    "tencent": "https://mirrors.cloud.tencent.com/docker-ce",
    # Huawei Cloud mirror help (mirrors.huaweicloud.com, "docker-ce").
    "huawei": "https://mirrors.huaweicloud.com/docker-ce",
    # get.docker.com's "AzureChinaCloud" mirror (reported unreachable at times, PR #304).
    "azure-china": "https://mirror.azure.cn/docker-ce",
}

# Docker's published signing keys (docs "verify that the fingerprint matches").
OFFICIAL_FINGERPRINTS = {
    "apt": "9DC858229FC7DD38854AE2D88D81803C0EBFCD88",
    "rpm": "060A61C51B558A7F742B77AAC52FEB6B621E9F35",
}


class MirrorError(HostsetupError):
    """The configured repository mirror is not usable."""


def resolve_mirror(value: str, insecure: bool = False) -> tuple[str, str]:
    """``(name, base_url)`` for a preset name or a URL; refuses plain http unless insecure."""
    if value in PRESETS:
        return value, PRESETS[value]
    problem = url_problem(value)
    if problem:
        raise MirrorError(f"mirror {value!r} {problem}")
    parsed = urlparse(value)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise MirrorError(f"mirror {value!r} is neither a preset ({', '.join(PRESETS)}) "
                          "nor an http(s) URL")
    if parsed.scheme == "http" and not insecure:
        raise MirrorError(f"mirror {value} uses plain http; pass --insecure-mirror (or set "
                          "install.insecure_mirror: true in hostsetup.yaml) to allow it. Packages are still "
                          "checked against the repository signing key.")
    return "custom", value.rstrip("/")
