#!/usr/bin/env bash
# Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d): the MLflow
# backend store and auth store get databases of their own beside Airflow's ($POSTGRES_DB).
set -euo pipefail
for db in "${MLFLOW_DB:?}" "${MLFLOW_AUTH_DB:?}"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
