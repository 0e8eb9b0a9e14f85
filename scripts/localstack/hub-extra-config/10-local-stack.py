# For the local stack only, loaded last (the settings document's extraConfigDir), as the chart's
# hub.extraConfig snippets are. Everything else the local hub is told is in its settings document
# (scripts/localstack/hub.py); this file only adds what needs a secret from the environment.
import os
import runpy
import signal

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads config files)

# An admin service for tests and operator scripts; its token lives in .local-stack/hub/. Its role is
# shared with the kind backend (scripts/localstack/admin_role.py, loaded by path: scripts/ is not on
# the hub's import path).
_admin = runpy.run_path(os.path.join(os.path.dirname(__file__), os.pardir, "admin_role.py"))
c.JupyterHub.services = [
    {"name": _admin["NAME"], "api_token": os.environ["PRIMEHUB_LOCAL_ADMIN_TOKEN"]},
]
c.JupyterHub.load_roles = [_admin["role"]()]


# A diagnosis aid for the suite: SIGUSR1 writes every pending asyncio task of the hub, with where it
# waits, to the hub's log. The integration tests send it when a test fails, so a spawn that never
# completes leaves the coroutine it is stuck in behind.
def _dump_tasks(signum, frame):
    import asyncio
    import io

    buf = io.StringIO()
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        return
    for task in tasks:
        buf.write(f"--- {task.get_name()} {task.get_coro()!r}\n")
        task.print_stack(limit=12, file=buf)
    import logging

    logging.getLogger("JupyterHub").warning("asyncio tasks of the hub (SIGUSR1):\n%s", buf.getvalue())


signal.signal(signal.SIGUSR1, _dump_tasks)
