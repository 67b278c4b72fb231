"""The database's connection details: the secret's, with the deployment's location over them
(an RDS-managed secret holds only the username and password)."""

from __future__ import annotations

import json

import pytest

from dataexport.adapters.postgres import DatabaseSecret
from dataexport.database_location import DatabaseLocation
from dataexport.errors import ConfigurationError

FULL = json.dumps(
    {"host": "db.internal", "port": 6432, "username": "reader", "password": "pw", "dbname": "app"}
)
MANAGED = json.dumps({"username": "reader", "password": "pw"})


def test_a_secret_in_the_rds_shape_is_read_whole() -> None:
    secret = DatabaseSecret.from_secret_string(FULL)
    assert (secret.host, secret.port, secret.dbname) == ("db.internal", 6432, "app")


def test_an_rds_managed_secret_takes_its_location_from_the_deployment() -> None:
    location = DatabaseLocation(host="cluster.rds.amazonaws.com", port=5433, dbname="orders")
    secret = DatabaseSecret.from_secret_string(MANAGED, location)
    assert (secret.host, secret.port, secret.dbname) == (
        "cluster.rds.amazonaws.com",
        5433,
        "orders",
    )
    assert (secret.username, secret.password) == ("reader", "pw")


def test_a_location_the_deployment_gives_wins_over_the_secret_s_part_by_part() -> None:
    secret = DatabaseSecret.from_secret_string(FULL, DatabaseLocation(host="proxy.internal"))
    assert (secret.host, secret.port, secret.dbname) == ("proxy.internal", 6432, "app")


def test_a_secret_without_a_host_and_no_location_names_the_parameter_to_set() -> None:
    with pytest.raises(ConfigurationError, match="DatabaseHost"):
        DatabaseSecret.from_secret_string(MANAGED)
    managed = DatabaseSecret.from_secret_string(MANAGED, DatabaseLocation(host="db"))
    assert (managed.port, managed.dbname) == (5432, "postgres")
