"""``ddx serve``: the incidents over HTTP, diagnosis on request, and Alertmanager's webhook."""
