"""Jinja2 templates shipped with hostsetup (installed as ``hostsetup.templates``)."""
