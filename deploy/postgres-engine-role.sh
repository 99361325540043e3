#!/bin/sh
# The engine's own PostgreSQL role and database (docker-compose.yml's `postgres-roles`):
# the service connects as ORDER_ENGINE_DB_USER, which owns only ORDER_ENGINE_DB_NAME (so
# its migrations can create tables there), never as the superuser that also owns
# Temporal's databases. Idempotent: run on every `up`, it sets the password from the
# environment again.
set -eu
: "${PGPASSWORD:?the superuser's password}"
: "${ORDER_ENGINE_DB_PASSWORD:?the engine role's password}"
role="${ORDER_ENGINE_DB_USER:-order_engine}"
database="${ORDER_ENGINE_DB_NAME:-orders}"
psql -v ON_ERROR_STOP=1 -v role="$role" -v database="$database" -v password="$ORDER_ENGINE_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT ALL ON DATABASE :"database" TO :"role";
SQL
