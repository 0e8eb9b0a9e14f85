"""PrimeHub's JupyterHub integration for today's JupyterHub: Keycloak login, groups, instance
types, images, datasets and quotas on top of KubeSpawner.

Entry points: `primehub_hub.auth.PrimeHubAuthenticator`, `primehub_hub.spawner.PrimeHubSpawner`
(both set up by hub-config/jupyterhub_config.py) and the `primehub-profiles` CLI.
"""

# The one version number of the project: the package (hub-config/pyproject.toml reads it from
# here), the CLI's --version and the chart's Chart.yaml `version` (a unit test keeps them equal).
__version__ = "0.1.0"
