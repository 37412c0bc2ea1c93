"""``hostsetup -H HOSTS verify``: prove with testinfra that each host is what hostsetup set up."""

from __future__ import annotations

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup.portainer import PortainerSettings
from hostsetup.registries import image_reference
from hostsetup.run.settings import daemon_from, settings_from, target_hosts
from hostsetup.run.status import EXIT_BAD_INPUT, EXIT_FAILED
from hostsetup.run.verify import ABSENT, expected_state, run_verify


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
    targets = target_hosts(c.config, local)
    images = tuple(image_reference(i) for i in pull or [])
    chosen = PortainerSettings(agent=True) if portainer_agent else PortainerSettings() if portainer else None
    if absent and (smoke or images or chosen):
        raise Exit("hostsetup: --absent checks that Docker Engine is gone: it cannot be combined with --smoke, "
                   "--pull or --portainer", code=EXIT_BAD_INPUT)
    expected = {t.name: ABSENT if absent else expected_state(settings_from(c.config, t), daemon_from(c.config, t),
                                                             smoke, images, chosen) for t in targets}
    reports = run_verify(c.config, targets, expected, checks, junit_xml, json, html)
    if any(r.status == "failed" for r in reports):
        raise Exit(code=EXIT_FAILED)
