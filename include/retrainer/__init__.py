"""Retrainer: the library behind the Airflow DAGs. Every step is a plain function with explicit inputs."""

__version__ = "0.1.0"
