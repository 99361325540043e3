"""Embedded infrastructure for `make run` and the tests: PostgreSQL, Redis and the Temporal dev
server as child processes of ours, on 127.0.0.1, with data under one directory.

    with EmbeddedStack(Path(".devdata")) as stack:
        env = stack.urls.as_env()
"""

from devstack.postgres import EmbeddedPostgres
from devstack.process import DevstackError
from devstack.redis import EmbeddedRedis
from devstack.stack import EmbeddedStack
from devstack.temporal import SEARCH_ATTRIBUTES, EmbeddedTemporal
from devstack.urls import InfraUrls, read_infra_env, write_infra_env

__all__ = [
    "SEARCH_ATTRIBUTES",
    "DevstackError",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedStack",
    "EmbeddedTemporal",
    "InfraUrls",
    "read_infra_env",
    "write_infra_env",
]
