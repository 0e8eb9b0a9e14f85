"""PrimeHub's habits in the user's pod, and the notices of a launch. A mixin of PrimeHubSpawner.

What users moving over from PrimeHub expect of their servers (docs/migrating-from-primehub.md):
their old home volume, a large enough /dev/shm, optional sudo, writable mounts they own, the start
wrapper (start-up hooks, Safe Mode, images without jupyterhub-singleuser), PrimeHub's links in the
home folder, and a dataset whose volume is missing left out with a notice instead of a pod that
never starts. The decisions are pure functions (singleuser.py, plan.py, volumes.py); this class
holds their settings and does the I/O.
"""

import asyncio

from kubernetes_asyncio.client.rest import ApiException
from traitlets import Any, Bool, Enum, Unicode
from traitlets.config import LoggingConfigurable

from .plan import leave_out_datasets
from .singleuser import (
    START_SCRIPTS_DIR,
    chown_extra,
    home_links,
    links_command,
    safe_mode_mounts,
    shm_pieces,
    shm_size,
    start_env,
    sudo_overrides,
    wrapped_command,
)
from .volumes import HOME_NAMINGS, home_claim_name

ANNOTATION_NOTICES = "hub.primehub.io/notices"


class PrimeHubHabits(LoggingConfigurable):
    shm_size = Unicode(
        "limit",
        config=True,
        help=(
            "Size of a memory-backed /dev/shm (PyTorch data loaders with workers need more than the 64 MiB "
            "default): a quantity such as 2Gi, 'limit' for the instance type's memory limit, or '' for none. "
            "An instance type's annotation instancetype.primehub.io/shmSize wins."
        ),
    )
    grant_sudo = Bool(
        False,
        config=True,
        help=(
            "Let users run sudo in their servers (docker-stacks' GRANT_SUDO): the container then starts as "
            "root, and its start script gives sudo to the notebook user before dropping to it."
        ),
    )
    start_wrapper = Bool(
        True,
        config=True,
        help=(
            "Start servers through PrimeHub's start wrapper: the start-up hooks (operator scripts, the group's "
            "and the user's .primehub/profile), Safe Mode, and images without jupyterhub-singleuser."
        ),
    )
    start_scripts_configmap = Unicode(
        "",
        config=True,
        help=f"ConfigMap of operator start scripts (*.sh, e.g. ldconfig for NVIDIA libraries) mounted at {START_SCRIPTS_DIR}.",
    )
    home_pvc_naming = Enum(
        list(HOME_NAMINGS),
        "primehub",
        config=True,
        help=(
            "How a user's home PVC is named the first time: 'primehub' = claim-<name escaped as PrimeHub "
            "and KubeSpawner < 7 did> (claim-john-2edoe), so homes made by PrimeHub are found again; "
            "'kubespawner' = pvc_name_template as KubeSpawner 7 expands it. A name once used is remembered."
        ),
    )
    primehub_claims = Any(
        None,
        allow_none=True,
        help=(
            "Names of the PVCs that exist (tests); None reads them from Kubernetes, except when "
            "primehub_catalog is given (the CLI, which has no cluster), where none is checked."
        ),
    )

    def start(self):
        if getattr(self, "_applied_options", None) is None:
            # decided afresh by load_user_options; progress() waits for it. A plan the
            # apply_user_options hook made just before this start is kept.
            self.plan = None
        return super().start()

    # --- before the plan is applied ------------------------------------------------------------

    async def without_missing_datasets(self, plan):
        """The plan without the datasets whose PVC does not exist, each logged and noticed."""
        claims = plan.dataset_claims()
        if not claims:
            return plan
        if self.primehub_claims is not None:
            missing = {name: claim for name, claim in claims.items() if claim not in self.primehub_claims}
        elif self.primehub_catalog is not None:
            return plan
        else:
            missing = {name: claim for name, claim in claims.items() if not await self._claim_exists(claim)}
        for name, claim in missing.items():
            self.log.warning(
                "%s: dataset %s left out of the launch: its PVC %s does not exist in namespace %s",
                self._log_name,
                name,
                claim,
                self.namespace,
            )
        return leave_out_datasets(plan, missing)

    async def _claim_exists(self, claim):
        try:
            await self.api.read_namespaced_persistent_volume_claim(claim, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            # unsure is not missing: keep the dataset and let Kubernetes report the problem
            self.log.warning(
                "Cannot check dataset volume %s (Kubernetes answered %s); mounting it anyway", claim, e.status
            )
        return True

    def choose_home_claim(self):
        # KubeSpawner remembers the claim in the server's state once used (_pvc_exists): never rename it.
        if self.storage_pvc_ensure and self.home_pvc_naming == "primehub" and not getattr(self, "_pvc_exists", False):
            self.pvc_name = home_claim_name(self.user.name, "primehub")

    # --- applying the plan -----------------------------------------------------------------------

    def habit_volumes(self, plan):
        """(volumes, mounts) the habits add: /dev/shm and the operator's start scripts."""
        volumes, mounts = [], []
        configured = self.volume_mounts.values() if isinstance(self.volume_mounts, dict) else self.volume_mounts or []
        shm_volume, shm_mount = shm_pieces(shm_size(plan.instance_type, self.shm_size), list(configured))
        if shm_volume:
            volumes.append(shm_volume)
            mounts.append(shm_mount)
        if self.start_scripts_configmap:
            volumes.append(
                {
                    "name": "primehub-start-scripts",
                    "configMap": {"name": self.start_scripts_configmap, "defaultMode": 0o755},
                }
            )
            mounts.append({"name": "primehub-start-scripts", "mountPath": START_SCRIPTS_DIR})
        return volumes, mounts

    def apply_habits(self, plan):
        """Command, user, hooks, annotations and environment of the habits; returns their variables."""
        from .spawner import literal

        if plan.safe_mode:
            self.volume_mounts = self._safe_mode_mounts(self.volume_mounts)
        if self.start_wrapper:
            self.cmd = wrapped_command(list(self.cmd or ["jupyterhub-singleuser"]))
        sudo_traits, env = sudo_overrides(self.grant_sudo, self.pod_security_context, self.container_security_context)
        for name, value in sudo_traits.items():
            setattr(self, name, value)
        if plan.notices:
            # kept on the pod too: the start page shows them, `kubectl describe pod` still does later
            self.extra_annotations = {**self.extra_annotations, ANNOTATION_NOTICES: literal("\n".join(plan.notices))}
        links = list(plan.links) + home_links(plan, dataset_symlinks=self.dataset_home_symlinks)
        if links:
            if "postStart" in (self.lifecycle_hooks or {}):
                self.log.warning("A postStart hook is configured; the links to datasets and group volumes are not made")
            else:
                self.lifecycle_hooks = {
                    **(self.lifecycle_hooks or {}),
                    "postStart": {"exec": {"command": ["sh", "-c", links_command(links)]}},
                }
        if self.start_wrapper:
            env.update(start_env(plan, safe_mode=plan.safe_mode))
        owned = chown_extra(plan)
        if owned:
            env["CHOWN_EXTRA"] = owned
        return env

    @staticmethod
    def _safe_mode_mounts(mounts):
        """The home volume (the mount of volume `home`) one folder deeper, as PrimeHub's Safe Mode did."""
        items = list(mounts.values()) if isinstance(mounts, dict) else list(mounts or [])
        home = next((m.get("mountPath", "") for m in items if m.get("name") == "home"), "")
        if not home:
            return mounts
        if isinstance(mounts, dict):
            return dict(zip(mounts.keys(), safe_mode_mounts(items, home)))
        return safe_mode_mounts(items, home)

    # --- while the server starts -----------------------------------------------------------------

    async def progress(self):
        # The plan's notices (e.g. a dataset left out) come first on the page the user watches.
        # The page may ask before the launch is decided: wait for the plan (or the start's end).
        for _ in range(int(max(self.start_timeout, 1) * 10)):
            start = getattr(self, "_start_future", None)
            if self.plan is not None or (start is not None and start.done()):
                break
            await asyncio.sleep(0.1)
        for notice in self.plan.notices if self.plan is not None else []:
            yield {"progress": 1, "message": notice}
        async for event in super().progress():
            yield event
