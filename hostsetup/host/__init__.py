"""The host layer: what install, daemon and doctor all know about a Docker host, each once."""
