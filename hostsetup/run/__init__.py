"""The run layer: what every task does between its flags and its output, once: settings resolution,
the fleet run (pool, batches, interrupts), progress, reports, statuses and exit codes."""
