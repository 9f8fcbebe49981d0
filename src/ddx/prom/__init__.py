"""Prometheus as the evidence source: one instance's findings from its metrics,
the instance against its peers, and the fleet ranked sickest first.

- ``client``: the HTTP API (``/api/v1/query``), timeouts, auth, one-line errors;
- ``metricmap``: the table from exporter metrics (PromQL) to finding ids;
- ``instance``: batch the table's queries for a whole job and judge each instance;
- ``peers``: robust statistics of an instance against its peers and its own
  history, and the scope findings (``scope.single_host``, ``scope.all_hosts``,
  ``scope.peer_host_healthy_same_software``);
- ``fleet``: every instance diagnosed and ranked by how sick it looks.

docs/fleet.md describes the map, what unknown means, the statistics and the score.
"""
