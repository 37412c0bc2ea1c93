"""Where Docker and hostsetup keep their files on a host: one name for each path, shared by install
(facts, plans), daemon, doctor and the checks (issue #14: these were defined three times)."""

DAEMON_JSON = "/etc/docker/daemon.json"
DROPIN_DIR = "/etc/systemd/system/docker.service.d"
EXECSTART_DROPIN = f"{DROPIN_DIR}/hostsetup-execstart.conf"   # hostsetup's ExecStart override (hosts in daemon.json)
PROXY_DROPIN = f"{DROPIN_DIR}/http-proxy.conf"                # the engine's proxy environment
