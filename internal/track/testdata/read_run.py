"""Reads an MLflow run back with MLflow's own Python client, as JSON:
parameters, every metric's full history, and the artifact paths.

    read_run.py TRACKING_URI RUN_ID
"""

import json
import sys

from mlflow.tracking import MlflowClient


def artifacts(client, run_id, path=None):
    out = []
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out += artifacts(client, run_id, f.path)
        else:
            out.append(f.path)
    return out


def main():
    uri, run_id = sys.argv[1], sys.argv[2]
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    metrics = {}
    for key in run.data.metrics:
        metrics[key] = [[m.step, m.value] for m in client.get_metric_history(run_id, key)]
    json.dump({
        "params": run.data.params,
        "metrics": metrics,
        "artifacts": sorted(artifacts(client, run_id)),
        "experiment": client.get_experiment(run.info.experiment_id).name,
        "run_name": run.info.run_name,
    }, sys.stdout)


if __name__ == "__main__":
    main()
