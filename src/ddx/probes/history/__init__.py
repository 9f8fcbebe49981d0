"""Probes of what happened before ddx looked: changes (packages, configuration, deploys, restarts) and log files."""
