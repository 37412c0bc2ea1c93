"""``hostsetup doctor``: why the Docker client cannot reach the daemon, and the safe fixes.

``probes`` gathers everything in one read-only shell script (one SSH round trip, or a
local subprocess), ``classify`` turns the probes into findings with pure rules,
``fixes`` plans the safe, reversible repairs, ``run`` carries one host through
probe, fix and probe again, and ``report`` prints and serialises the result.
"""
