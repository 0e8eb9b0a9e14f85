# The bench hub's extra config folder (its settings' extraConfigDir): runs after hub-config/jupyterhub_config.py.
# Only bench hubs (python -m benchmarks) load this folder.
import os
import sys

c = get_config()  # noqa: F821

sys.path.insert(0, os.environ["BENCH_REPO"])
from benchmarks import hubside  # noqa: E402

hubside.configure(c, os.environ)
