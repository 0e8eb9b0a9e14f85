"""Building pods without a cluster (the `primehub-profiles pod` command and tests).

KubeSpawner loads a Kubernetes client configuration when it is constructed, even though
building a pod manifest never contacts the API server. Outside a cluster and without a kube
config that load fails, so for offline use a stub configuration pointing nowhere is put in
place of the default kube config file location.
"""

import contextlib
import os
import tempfile

_STUB = """apiVersion: v1
kind: Config
clusters:
- name: offline
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: offline
  user: {token: offline}
contexts:
- name: offline
  context: {cluster: offline, user: offline, namespace: default}
current-context: offline
"""


@contextlib.contextmanager
def offline_kube_config():
    """Make KubeSpawner construction work without any cluster or kube config."""
    from kubernetes_asyncio.config import kube_config

    with tempfile.TemporaryDirectory(prefix="primehub-offline-") as folder:
        path = os.path.join(folder, "config")
        with open(path, "w", encoding="utf-8") as f:
            f.write(_STUB)
        # kube_config reads KUBECONFIG into this constant at import time, so set the constant
        previous = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path
        try:
            yield path
        finally:
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = previous
