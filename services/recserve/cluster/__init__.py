"""`recserve cluster`: operate a recserve release on Kubernetes (kubernetes Python client).

- ``status``: replicas per service, HPA current/target, model version per pod.
- ``rollout --version V``: publish bundle V (already on the bundle volume) as the active
  model. It creates a Job from the release's trainer CronJob that runs only
  ``python -m recserve.training publish --version V``; publish sets ``recserve:active`` in
  Redis and every service hot-swaps to it (no pod restart). The requested version is
  recorded on the CronJob (annotation ``recserve.io/desired-model-version``).
- ``train``: run the CronJob's train + publish now (a new version).

Entry point: ``recserve.cluster.__main__.main(argv)``.
"""

try:
    import kubernetes  # noqa: F401 - only to say which extra provides it
except ModuleNotFoundError as e:  # an optional extra: the service images do not ship it
    raise SystemExit(
        f"recserve cluster: the Kubernetes client is not installed ({e}); "
        "pip install 'recserve[cluster]'"
    ) from e

from recserve.cluster.ops import (
    DESIRED_VERSION_ANNOTATION,
    ClusterApis,
    PodStatus,
    ReleaseStatus,
    RolloutError,
    ServiceStatus,
    create_job_from_cronjob,
    release_status,
    rollout,
    wait_for_job,
    wait_for_version,
)

__all__ = [
    "DESIRED_VERSION_ANNOTATION",
    "ClusterApis",
    "PodStatus",
    "ReleaseStatus",
    "RolloutError",
    "ServiceStatus",
    "create_job_from_cronjob",
    "release_status",
    "rollout",
    "wait_for_job",
    "wait_for_version",
]
