"""The hub's settings from environment variables (names fixed in docs/architecture.md)."""

import json
import os
import shlex
from dataclasses import dataclass, field


class SettingsError(ValueError):
    pass


def _command(raw):
    if not raw or not raw.strip():
        return ["jupyterhub-singleuser"]
    text = raw.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise SettingsError(f"PRIMEHUB_SINGLEUSER_CMD is not a JSON list: {e}") from None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise SettingsError("PRIMEHUB_SINGLEUSER_CMD must be a non-empty JSON list of strings")
        return value
    return shlex.split(text)


def _flag(raw, default):
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _seconds(env, name, default):
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of seconds, not {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} cannot be negative")
    return value


def _choice(env, name, allowed, default):
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


@dataclass
class Settings:
    keycloak_url: str = ""
    keycloak_internal_url: str = ""
    realm: str = "primehub"
    client_id: str = "jupyterhub"
    client_secret: str = ""
    role_prefix: str = ""
    public_url: str = ""
    namespace: str = "default"
    singleuser_cmd: list = field(default_factory=lambda: ["jupyterhub-singleuser"])
    home_capacity: str = "1Gi"
    home_volume: bool = True
    home_pvc_naming: str = "primehub"
    start_timeout: int = 1200
    scope_required: str = ""
    keycloak_logout: str = "auto"
    shm_size: str = "limit"
    grant_sudo: bool = False
    start_wrapper: bool = True
    start_scripts_configmap: str = ""
    kernel_cull_timeout: int = 3600
    extra_config_dir: str = ""
    hub_connect_url: str = ""

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env

        def get(name, default=""):
            value = env.get(name)
            return value.strip() if value and value.strip() else default

        keycloak_url = get("PRIMEHUB_KEYCLOAK_URL").rstrip("/")
        return cls(
            keycloak_url=keycloak_url,
            keycloak_internal_url=get("PRIMEHUB_KEYCLOAK_INTERNAL_URL", keycloak_url).rstrip("/"),
            realm=get("PRIMEHUB_KEYCLOAK_REALM", "primehub"),
            client_id=get("PRIMEHUB_KEYCLOAK_CLIENT_ID", "jupyterhub"),
            client_secret=env.get("PRIMEHUB_KEYCLOAK_CLIENT_SECRET", ""),
            role_prefix=get("PRIMEHUB_ROLE_PREFIX"),
            public_url=get("PRIMEHUB_PUBLIC_URL").rstrip("/"),
            namespace=get("PRIMEHUB_NAMESPACE") or get("POD_NAMESPACE") or "default",
            singleuser_cmd=_command(env.get("PRIMEHUB_SINGLEUSER_CMD")),
            home_capacity=get("PRIMEHUB_HOME_CAPACITY", "1Gi"),
            home_volume=_flag(env.get("PRIMEHUB_HOME_VOLUME"), True),
            scope_required=get("PRIMEHUB_SCOPE_REQUIRED"),
            shm_size=env.get("PRIMEHUB_SHM_SIZE", "limit").strip(),
            grant_sudo=_flag(env.get("PRIMEHUB_GRANT_SUDO"), False),
            start_wrapper=_flag(env.get("PRIMEHUB_START_WRAPPER"), True),
            start_scripts_configmap=get("PRIMEHUB_START_SCRIPTS_CONFIGMAP"),
            keycloak_logout=_choice(env, "PRIMEHUB_KEYCLOAK_LOGOUT", ("auto", "oidc", "legacy"), "auto"),
            start_timeout=_seconds(env, "PRIMEHUB_START_TIMEOUT", 1200),
            kernel_cull_timeout=_seconds(env, "PRIMEHUB_KERNEL_CULL_TIMEOUT", 3600),
            home_pvc_naming=_choice(env, "PRIMEHUB_HOME_PVC_NAMING", ("primehub", "kubespawner"), "primehub"),
            extra_config_dir=get("PRIMEHUB_EXTRA_CONFIG_DIR"),
            hub_connect_url=get("PRIMEHUB_HUB_CONNECT_URL"),
        )
