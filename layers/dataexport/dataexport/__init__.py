"""dataexport: serverless exports of PostgreSQL datasets (domain, catalog, formats, adapters)."""
