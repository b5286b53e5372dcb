"""The launcher: the local stack behind ``make run`` and the production topology on this machine.

Outside the library on purpose: nothing in ``retrainer`` (the retraining loop) or in ``plugins/``
imports this package. ``python -m retrainer_launcher --help`` lists the commands.

Modules, by concern:

- :mod:`.common`       the launcher's error, output callback, default ports and host
- :mod:`.envfile`      ``KEY=value`` files: read with python-dotenv, written shell-sourceable, mode 600
- :mod:`.credentials`  the local stack's Airflow secrets and login passwords
- :mod:`.processes`    pid files, starting processes in their own session, stopping their families
- :mod:`.http_client`  one JSON request over the standard library, waiting for a condition
- :mod:`.airflow_api`  the REST calls the launcher makes (Airflow: token, pools, DAGs, runs, task
                       instances, logs; Airflow's and MLflow's health)
- :mod:`.airflow_env`  the environment of the local stack's Airflow processes, its SQLite metadata DB
- :mod:`.topology`     docker-compose.yaml read as services, Compose's interpolation, the login file
- :mod:`.local`        the local stack (:class:`~.local.Stack`): up, trigger, wait
- :mod:`.distributed`  the compose file's services as processes (:class:`~.distributed.DistributedStack`)
- :mod:`.demo`         seeding the demo source, the champion's summary, the drift demo
- :mod:`.summary`      what ``make run`` prints at the end, and ``status``
- :mod:`.commands`     the command line (``__main__`` runs it)

``stop`` and ``status`` work without the venv: every module imports only the standard library (and
:mod:`retrainer.names`, itself standard-library only) at import time; third-party packages are
imported inside the functions that need them.
"""
