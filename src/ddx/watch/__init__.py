"""Watching one host: sampling, baselines, symptoms, incidents, notifications, the store."""
