"""dataexport_local: the local runtime (moto AWS, embedded PostgreSQL, local API server)."""
