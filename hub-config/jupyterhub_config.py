# The hub's one configuration file, used unchanged by the Helm chart and the local stack.
# Settings come from one document ($PRIMEHUB_SETTINGS, see primehub_hub/settings.py and
# docs/architecture.md); the environment carries secrets only. Files in the document's
# extraConfigDir run last and may override anything here.
import glob
import logging
import os
import sys

# The stock hub image mounts this folder at /usr/local/etc/jupyterhub/ without installing the
# package, so the package next to this file must be importable from here.
_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

from primehub_hub.settings import Settings, apply_settings  # noqa: E402

c = get_config()  # noqa: F821 (provided by traitlets when loading this file)
settings = Settings.load()
if not settings.keycloak_url:
    logging.getLogger("primehub_hub.config").warning("keycloak.url is not set in the hub's settings; logins will fail")
apply_settings(c, settings)
# The logout round trip through Keycloak is the authenticator's logout_handler (/hub/logout).

# --- operator additions, last ------------------------------------------------------------
if settings.extra_config_dir:
    for _path in sorted(glob.glob(os.path.join(settings.extra_config_dir, "*.py"))):
        logging.getLogger("primehub_hub.config").info("Loading extra config %s", _path)
        with open(_path, encoding="utf-8") as _f:
            _code = compile(_f.read(), _path, "exec")
        exec(
            _code,
            {"c": c, "get_config": get_config, "settings": settings, "__file__": _path, "__name__": "__config__"},  # noqa: F821
        )  # noqa: S102
