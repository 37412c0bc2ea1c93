"""Real SSH test hosts (systemd + sshd containers) and a local docker-ce mirror.

Used by ``hostsetup sandbox``/``hostsetup demo`` and by the end-to-end tests.
"""
