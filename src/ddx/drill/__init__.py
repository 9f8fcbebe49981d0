"""ddx drill: real faults injected into a sandbox web stack, and how ddx diagnoses them.

``sandbox`` records and removes everything a drill creates; ``stack`` builds
nginx -> gunicorn -> memcached + PostgreSQL with a load generator on loopback;
``scenarios`` holds one fault each; ``runner`` injects, diagnoses and reports.
"""
