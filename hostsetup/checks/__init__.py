"""Testinfra checks that prove a host is the Docker host hostsetup set up.

``plugin`` gives every check file (ours and the user's ``--checks``) the
``expected`` and ``platform`` fixtures; ``test_docker_host`` holds the checks.
Run them with ``hostsetup -H ... verify``.
"""
