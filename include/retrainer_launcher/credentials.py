"""The local stack's secrets and logins, generated once per AIRFLOW_HOME and kept (mode 600).

``<home>/retrainer.env`` holds the Fernet key, the JWT secret and the API secret key every Airflow
process of the stack must share; ``<home>/simple_auth_manager_passwords.json.generated`` the
SimpleAuthManager passwords of :data:`STACK_USERS`. (The production topology's secrets come from
``.env`` instead: see :mod:`retrainer_launcher.distributed`.)
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from retrainer_launcher.common import StackError
from retrainer_launcher.envfile import read_env_file, write_env_file, write_private

ENV_FILE = "retrainer.env"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"

ADMIN_USER = "admin"
# SimpleAuthManager users of the local stack (name: role); passwords are generated into PASSWORDS_FILE.
# viewer can look at everything (the control room included), op can also start runs (replay).
STACK_USERS = {ADMIN_USER: "admin", "viewer": "viewer", "op": "op"}

FERNET_KEY = "AIRFLOW__CORE__FERNET_KEY"
JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"  # noqa: S105 - the variable's name, not a secret
API_SECRET_KEY = "AIRFLOW__API__SECRET_KEY"  # noqa: S105 - the variable's name, not a secret
SECRET_KEYS = (FERNET_KEY, JWT_SECRET, API_SECRET_KEY)


def load_or_create_secrets(home: Path) -> dict[str, str]:
    """The Fernet key, JWT secret and API secret key of this AIRFLOW_HOME, generated on first use.

    They live in ``<home>/retrainer.env`` (mode 600). Every Airflow process must share them: without
    a shared JWT secret, each process makes its own and task tokens fail with "Invalid auth token".
    """
    existing = read_env_file(home / ENV_FILE)
    values = {k: existing[k] for k in SECRET_KEYS if existing.get(k)}
    if len(values) == len(SECRET_KEYS):
        return values
    generated = {
        FERNET_KEY: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        JWT_SECRET: secrets.token_urlsafe(64),
        API_SECRET_KEY: secrets.token_urlsafe(32),
    }
    values = {k: values.get(k) or generated[k] for k in SECRET_KEYS}
    write_env_file(home / ENV_FILE, {**existing, **values})
    return values


def ensure_admin_password(home: Path, user: str = ADMIN_USER) -> str:
    """The SimpleAuthManager password of ``user``, generated once into ``<home>/<PASSWORDS_FILE>``."""
    path = home / PASSWORDS_FILE
    passwords: dict[str, str] = {}
    if path.exists() and path.read_text().strip():
        try:
            passwords = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise StackError(
                f"{path}: not valid JSON ({exc}); delete it to generate a new password"
            ) from None
    if not passwords.get(user):
        alphabet = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"
        passwords[user] = "".join(secrets.choice(alphabet) for _ in range(16))
        write_private(path, json.dumps(passwords) + "\n")
    return passwords[user]
