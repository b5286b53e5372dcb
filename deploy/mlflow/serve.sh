#!/usr/bin/env bash
# Start the MLflow tracking server behind its basic-auth app (used by docker-compose.yaml and by the
# native launcher, `make up-distributed`). The auth store's URL carries a password, so its config file
# is written here from the environment, readable by this user only, instead of living in the repo.
# Extra arguments go to `mlflow server` (host, port, workers, --serve-artifacts ...); the backend store
# and artifact destination come from MLFLOW_BACKEND_STORE_URI and MLFLOW_ARTIFACTS_DESTINATION.
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?MLFLOW_BACKEND_STORE_URI is not set}"
: "${MLFLOW_AUTH_DATABASE_URI:?MLFLOW_AUTH_DATABASE_URI is not set}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?MLFLOW_AUTH_ADMIN_PASSWORD is not set (MLFLOW_ADMIN_PASSWORD in .env)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?MLFLOW_FLASK_SERVER_SECRET_KEY is not set}"
config="${MLFLOW_AUTH_CONFIG_PATH:?MLFLOW_AUTH_CONFIG_PATH is not set}"
mkdir -p "$(dirname "$config")"
umask 077
# configparser treats % as interpolation: double it (URL-encoded passwords contain %).
cat > "$config" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${MLFLOW_AUTH_DATABASE_URI//%/%%}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Checking a password costs a PBKDF2 hash (about 0.3 s of CPU, over 1 s on a busy 2-core host) and a
# training run makes dozens of requests: remember good logins for a minute (per server worker; a
# changed password takes effect on the other workers within that minute).
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}
INI
exec mlflow server --app-name basic-auth "$@"
