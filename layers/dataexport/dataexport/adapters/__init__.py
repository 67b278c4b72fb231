"""The only modules that talk to AWS and PostgreSQL; they return domain objects."""
