"""Use cases: what the API and the export steps do, independent of events and HTTP."""
