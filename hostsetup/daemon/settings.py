"""daemon.json settings: profiles, template, plain keys; rendered and checked on this machine
before any host is touched."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from hostsetup import secrets
from hostsetup.errors import HostsetupError
from hostsetup.inputs.files import read_text
from hostsetup.registries import check_ca, registry_name
from hostsetup.render import environment, json_object, to_json
from hostsetup.settings import parse_bool

PROFILES = ("log-rotation", "registry-mirrors", "production")

DAEMON_DEFAULTS: dict[str, Any] = {
    "profiles": "",        # names from PROFILES (list or comma-separated), merged in order
    "template": "",        # a user's own Jinja2 template file rendering a JSON object
    "vars": {},            # variables for the profiles and the template
    "settings": {},        # plain daemon.json keys, applied last
    "replace": False,      # own the whole file instead of merging into the host's
    "allow_insecure_tcp": False,
    "registry_cas": {},    # registry (host[:port]) -> CA certificate file, installed in /etc/docker/certs.d
    "allow_insecure_registries": False,  # insecure-registries (no TLS verification) only when this says so
}
INSECURE_REGISTRIES = "insecure-registries"


class DaemonSettingsError(HostsetupError):
    """The daemon settings cannot be rendered into a valid daemon.json."""


@dataclass(frozen=True)
class DaemonSettings:
    """The daemon.json keys hostsetup manages, and how."""

    config: dict[str, Any]          # rendered and merged: the keys we own
    sources: dict[str, str]         # key -> where it came from (profile, template, settings)
    replace: bool = False
    allow_insecure_tcp: bool = False
    origin: str = "settings"        # for messages: a file name or "settings"
    extra: dict[str, Any] = field(default_factory=dict)
    registry_cas: dict[str, str] = field(default_factory=dict)  # registry -> PEM text, checked
    allow_insecure_registries: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.config) or self.replace or bool(self.registry_cas)

    @property
    def owns_daemon_json(self) -> bool:
        return bool(self.config) or self.replace


def canonical_json(config: Mapping[str, Any]) -> str:
    """The one text form of a daemon.json: sorted keys, 2-space indent, final newline."""
    return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _render_object(text: str, what: str) -> dict[str, Any]:
    try:
        return json_object(text)
    except ValueError as exc:
        raise DaemonSettingsError(f"{what} did not render a JSON object: {exc}") from None


def render_profile(name: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    if name not in PROFILES:
        raise DaemonSettingsError(f"unknown daemon profile {name!r}; choose from {', '.join(PROFILES)}")
    try:
        text = environment().get_template(f"daemon/{name}.json.j2").render(**variables)
    except TemplateError as exc:
        raise DaemonSettingsError(f"profile {name}: {exc} (set it under daemon.vars)") from None
    return _render_object(text, f"profile {name}")


class UserTemplates(SandboxedEnvironment):
    """A user's daemon.json template renders in Jinja's sandbox (no attribute tricks, ``range``
    bounded) and cannot build huge values with ``*`` or ``**``: a template is input, and input must
    not hang the run."""

    intercepted_binops = frozenset(["*", "**"])
    MAX_SIZE = 1 << 20

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise SecurityError(f"the power {right} is too large for a template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > self.MAX_SIZE:
                    raise SecurityError("a value repeated into more than 1 MiB is too large for a template")
        return super().call_binop(context, operator, left, right)


def render_template_file(path: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """A user's template: read by the validation layer (exists, size, UTF-8), rendered strictly;
    any failure of the template itself (a syntax error, an undefined or mistyped variable) is the
    user's input error, named with the file."""
    file = Path(path).expanduser()
    try:
        source = read_text(file, "daemon template")
    except HostsetupError as exc:
        raise DaemonSettingsError(str(exc)) from None
    env = UserTemplates(loader=FileSystemLoader(str(file.parent)), undefined=StrictUndefined,
                        keep_trailing_newline=True, autoescape=False)
    env.filters["json"] = to_json
    try:
        text = env.from_string(source).render(**variables)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        line = f":{lineno}" if lineno else ""
        raise DaemonSettingsError(f"{path}{line}: {exc}") from None
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        raise DaemonSettingsError(f"{path}: rendering failed: {type(exc).__name__}: {exc}") from None
    return _render_object(text, str(path))


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value or []]


def daemon_settings(raw: Mapping[str, Any]) -> DaemonSettings:
    """Render profiles, template and plain settings (later ones win, key by key)."""
    values = {**DAEMON_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    unknown = set(values) - set(DAEMON_DEFAULTS)
    if unknown:
        raise DaemonSettingsError(f"unknown daemon setting(s): {', '.join(sorted(unknown))}")
    variables = dict(values["vars"] or {})
    config: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers = [(f"profile {p}", render_profile(p, variables)) for p in _as_list(values["profiles"])]
    if values["template"]:
        layers.append((str(values["template"]), render_template_file(str(values["template"]), variables)))
    if not isinstance(values["settings"], Mapping):
        raise DaemonSettingsError("daemon.settings must be a mapping of daemon.json keys")
    layers.append(("daemon.settings", dict(values["settings"])))
    for origin, layer in layers:
        for key, value in layer.items():
            config[key] = value
            sources[key] = origin
    try:
        replace = parse_bool(values["replace"], "daemon.replace")
        allow_insecure_tcp = parse_bool(values["allow_insecure_tcp"], "daemon.allow_insecure_tcp")
        allow_insecure = parse_bool(values["allow_insecure_registries"], "daemon.allow_insecure_registries")
        registry_cas = read_registry_cas(values["registry_cas"])
    except HostsetupError as exc:
        raise DaemonSettingsError(str(exc)) from None
    if config.get(INSECURE_REGISTRIES) and not allow_insecure:
        raise DaemonSettingsError(
            f"{INSECURE_REGISTRIES} (from {sources[INSECURE_REGISTRIES]}) turns off TLS verification for those "
            "registries: anyone on the path can serve their images. Install the registry's CA instead "
            "(--registry-ca REGISTRY=FILE), or say you mean it with --insecure-registry REGISTRY "
            "(daemon.allow_insecure_registries: true)")
    proxies = config.get("proxies")
    if isinstance(proxies, Mapping):  # their passwords are masked wherever they would show
        secrets.register_url_credentials(str(v) for v in proxies.values() if isinstance(v, str))
    return DaemonSettings(config, sources, replace, allow_insecure_tcp, registry_cas=registry_cas,
                          allow_insecure_registries=allow_insecure)


def read_registry_cas(value: Any, what: str = "daemon.registry_cas") -> dict[str, str]:
    """``{registry: CA file}`` -> ``{registry: PEM text}``, each name and certificate checked."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise DaemonSettingsError(f"{what} must map a registry (host[:port]) to its CA certificate file")
    cas = {}
    for name, path in value.items():
        registry = registry_name(str(name), what)
        if not isinstance(path, str) or not path.strip():
            raise DaemonSettingsError(f"{what}: {registry}: give the CA certificate's file name")
        cas[registry] = check_ca(read_text(path, f"CA certificate for {registry}", limit=256 * 1024), path)
    return cas
