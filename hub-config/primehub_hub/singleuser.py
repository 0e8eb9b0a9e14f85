"""What the hub sets up inside the user's server (rather than around it). Pure.

- idle kernels are shut down by the server itself (Jupyter Server's kernel culling), as PrimeHub
  configured it, so a forgotten notebook does not hold its memory or GPU until the whole server is
  culled by the hub's idle culler.
"""

import jupyterhub

# PrimeHub's defaults: a server that does not come up in 20 minutes fails (image pulls of large
# GPU images take long); an idle server is stopped after 2 hours.
DEFAULT_START_TIMEOUT = 1200
DEFAULT_CULL_TIMEOUT = 7200
DEFAULT_KERNEL_CULL_TIMEOUT = 3600
KERNEL_CULL_INTERVAL = 300


def kernel_culling_args(idle_timeout, interval=KERNEL_CULL_INTERVAL):
    """jupyterhub-singleuser arguments that make the server shut down idle kernels (0 = never).

    `cull_connected`: a kernel whose notebook is still open in a forgotten browser tab is idle too.
    """
    if not idle_timeout or idle_timeout <= 0:
        return []
    interval = max(1, min(int(interval), int(idle_timeout)))
    return [
        f"--MappingKernelManager.cull_idle_timeout={int(idle_timeout)}",
        f"--MappingKernelManager.cull_interval={interval}",
        "--MappingKernelManager.cull_connected=True",
    ]


def jupyterhub_has_stop_on_pending_page(version=None):
    """JupyterHub 6 shows its own Stop button while a server starts; before that the hub adds Cancel."""
    version = version or jupyterhub.__version__
    try:
        return int(str(version).split(".")[0]) >= 6
    except ValueError:
        return False
