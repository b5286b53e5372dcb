"""model_files: no DAG of its own; the import error of every model file that builds no DAG.

The DAG files build each DAG kind for every model file in ``models/`` (retrainer_airflow.per_model) and
skip a file that fails validation, so the other models' DAGs keep working. Airflow records import
errors per DAG file, not per model: this file raises one error naming every refused model file and its
keys, and it shows in the UI's *DAG Import Errors* under this file's name until the files are fixed.
Fixing (or removing) the file clears it on the next parse; a removed file's DAGs disappear.
"""

from __future__ import annotations

from retrainer_airflow.per_model import model_file_errors

from retrainer.config import ConfigError

_errors = model_file_errors()
if _errors:
    raise ConfigError(
        f"{len(_errors)} model file(s) build no DAGs (the other models' DAGs are not affected):\n\n"
        + "\n\n".join(_errors.values())
    )
