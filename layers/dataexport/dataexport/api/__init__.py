"""The /v1 HTTP API: routes, the job's public shape, and the one error shape."""
