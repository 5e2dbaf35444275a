"""Developer tooling for recserve, kept out of the product package (and the image):

- ``tools.chart``: render the Helm chart offline, refresh/check k8s/manifests.
- ``tools.dashboards_check``: dashboards, alerts and adapter rules through a real Prometheus.
- ``tools.metrics_sim``: an emulated recserve metrics endpoint built from the real metrics.

Run from the repository root: ``python -m tools.<module>`` (see mk/k8s.mk).
"""

from pathlib import Path

# Files the tools read (helm/, k8s/, Dockerfile) are located from here, not from the package.
REPO_ROOT = Path(__file__).resolve().parents[1]
