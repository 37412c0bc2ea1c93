"""daemon.json: settings, schema, planning and safe application."""
