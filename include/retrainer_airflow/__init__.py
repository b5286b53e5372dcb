"""Retrainer's Airflow glue: what sits between Airflow and the library (``retrainer``), and nothing else.

* :mod:`retrainer_airflow.tasks`: params.yaml for a task, the run facts of a task's Airflow context
  (thin wrappers over :func:`retrainer.run_context.from_airflow`), library errors -> task outcomes;
* :mod:`retrainer_airflow.links`: URLs into the Airflow UI and its plugins;
* :mod:`retrainer_airflow.executor` / :mod:`retrainer_airflow.preload`: the LocalExecutor whose task
  processes start with the heavy libraries already imported.

The library never imports this package; DAG files and plugins do. Nothing heavy is imported at module
level, so a DAG file may import it at parse time.
"""
