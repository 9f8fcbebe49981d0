"""Probes of the services that run on (or are named for) this host: web servers, caches, databases, pools."""
