"""The dataset catalog: what can be exported, with which columns, filters and roles
(model.py), read from YAML declarations (loader.py)."""
