"""``hostsetup -H HOSTS verify``: prove with testinfra that each host is what hostsetup set up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import Context, Exit, task

from hostsetup.daemon.settings import DaemonSettings
from hostsetup.htmlreport import write_html
from hostsetup.portainer import PortainerSettings
from hostsetup.registries import image_reference
from hostsetup.report import write_json_file
from hostsetup.settings import InstallSettings, settings_as_dict
from hostsetup.targets import Target
from hostsetup.verify import SshOptions, VerifyJob, VerifyReport, failures, table, verify_fleet


def ssh_options(c: Context) -> SshOptions:
    keys = c.config.connect_kwargs.get("key_filename") or []
    return SshOptions(ssh_config=getattr(c.config, "_runtime_ssh_path", None) or None,
                      identity=str(keys[0]) if keys else None,
                      known_hosts=tuple(str(k) for k in c.config.known_hosts),
                      connect_timeout=int(c.config.timeouts.connect or 10))


def expected_state(settings: InstallSettings, daemon: DaemonSettings | None, smoke: bool,
                   pull: tuple[str, ...] = (), portainer: PortainerSettings | None = None) -> dict[str, Any]:
    """What the checks expect: the very settings install used (JSON), the daemon keys we own, smoke,
    images each user must be able to pull."""
    return {"install": settings_as_dict(settings), "pull": list(pull),
            "portainer": {"name": portainer.name, "port": portainer.port} if portainer else None,
            "daemon": {"config": daemon.config, "replace": daemon.replace, "registry_cas": daemon.registry_cas}
            if daemon and daemon.configured else None,
            "smoke": smoke}


ABSENT: dict[str, Any] = {"absent": True}   # the "nothing left" check set (uninstall's)


def run_verify(c: Context, targets: list[Target], expected: dict[str, dict[str, Any]],
               checks: list[str] | None = None, junit_xml: str | None = None,
               json_path: str | None = None, html_path: str | None = None) -> list[VerifyReport]:
    """Verify hosts in parallel; print the per-host table and each failure in plain words."""
    base = ssh_options(c)
    extra = [str(Path(p).expanduser()) for p in checks or []]

    def copy(target: Target) -> Path | None:
        if junit_xml and len(targets) > 1:
            return Path(f"{junit_xml}.{target.name.replace('/', '_')}.xml")
        return Path(junit_xml) if junit_xml else None

    jobs = [VerifyJob(t.name, t.address, expected[t.name], t.key, copy(t)) for t in targets]
    reports = verify_fleet(jobs, base, extra, parallel=int(c.config.parallel))
    print("\n".join(table(reports)))
    for line in failures(reports):
        print(f"FAILED {line}")
    if json_path:
        write_json_file(json_path, {"hosts": [r.as_dict() for r in reports]})
    if html_path:
        write_html(html_path, "verify", [r.as_dict() for r in reports])
    return reports


@task(iterable=["checks", "pull"], help={
    "smoke": "also run a tiny image: pulled through the registry mirrors when any are configured (each must "
             "serve it), else the bundled one, loaded offline",
    "pull": "an image each user (install.users, else the SSH user) must pull with their own login; repeatable",
    "portainer": "also check Portainer: its container runs with --restart=always and answers on 9443",
    "portainer-agent": "also check the Portainer agent: it runs with --restart=always and answers on 9001",
    "absent": "check instead that Docker Engine is gone (what uninstall leaves): no packages, units, socket, "
              "repository or drop-ins of hostsetup's",
    "local": "check this machine itself, no SSH (as root or through passwordless sudo)",
    "checks": "your own testinfra test file(s); they get the same `host` and `expected` fixtures",
    "junit-xml": "write JUnit XML (one file per host, suffixed by host, when there are several)",
    "json": "write a machine-readable report to this file",
    "html": "write a self-contained HTML page of the checks to this file (sortable, filterable, offline)",
})
def verify(c: Context, smoke: bool = False, checks: list[str] | None = None, junit_xml: str | None = None,
           json: str | None = None, pull: list[str] | None = None, html: str | None = None,
           portainer: bool = False, portainer_agent: bool = False, absent: bool = False, local: bool = False) -> None:
    """Check each host with testinfra: packages, repository and key, services, socket, group, daemon.json."""
    from hostsetup.tasks.install import daemon_from, settings_from, target_hosts

    targets = target_hosts(c, local)
    images = tuple(image_reference(i) for i in pull or [])
    chosen = PortainerSettings(agent=True) if portainer_agent else PortainerSettings() if portainer else None
    if absent and (smoke or images or chosen):
        raise Exit("hostsetup: --absent checks that Docker Engine is gone: it cannot be combined with --smoke, "
                   "--pull or --portainer", code=2)
    expected = {t.name: ABSENT if absent else expected_state(settings_from(c, t), daemon_from(c, t), smoke, images,
                                                             chosen) for t in targets}
    reports = run_verify(c, targets, expected, checks, junit_xml, json, html)
    if any(r.status == "failed" for r in reports):
        raise Exit(code=1)
