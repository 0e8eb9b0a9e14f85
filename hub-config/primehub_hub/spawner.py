"""PrimeHubSpawner: KubeSpawner that launches what the user's groups entitle them to.

What it adds to KubeSpawner, and where:

- the options form (`options_form`, form.py) and its server-side check (`options_from_form`)
  (`PrimeHubOptionsForm`, spawn_form.py), and the same check again when the options are applied
  (JupyterHub's `apply_user_options` hook on every spawn, from the form and the REST API alike,
  else `load_user_options`, which KubeSpawner's start calls first), all from the entitlements of
  the user who will own the server (`self.user`), never of the requester;
- `apply_plan`: instance type, image, datasets, group volumes, home capacity, labels and
  environment onto KubeSpawner's traits, starting each launch from the configured baseline;
- quota enforcement under a per-group lock held until the pod exists, and the group volumes
  (`GroupQuotaGuard`, spawn_quota.py);
- fast failure: while the pod is pending, the scheduler's verdict is watched, and an
  unschedulable pod fails the spawn in about a second with the reason in words; so does a volume
  kubelet cannot mount, naming the dataset, project volume or home folder, and an image kubelet
  cannot pull, naming the image (`FastSchedulingFailure`, spawn_scheduling.py; the rules in
  scheduling.py, mounts.py and pulls.py).
"""

import copy
import json

from jupyterhub import version_info as JUPYTERHUB_VERSION
from kubespawner import KubeSpawner
from traitlets import Any, Bool, List, Unicode, default

from .datasets import DEFAULT_GIT_SYNC_HOST_ROOT, DEFAULT_MOUNT_ROOTS
from .errors import ConfigurationError, Refused, quiet_refusals
from .plan import plan_launch
from .quotas import LABEL_GROUP, LABEL_USER, label_value
from .refresh import AUTH_STATE_KEY, refreshed_id
from .resources import CatalogWatcher, instance_type_override
from .spawn_form import PrimeHubOptionsForm
from .spawn_habits import PrimeHubHabits
from .spawn_quota import GroupQuotaGuard
from .spawn_scheduling import FastSchedulingFailure
from .volumes import home_capacity
from .watch import notifying

# Traits a launch plan sets; each launch starts again from their configured values.
PLAN_TRAITS = (
    "image",
    "image_pull_secrets",
    "cpu_limit",
    "cpu_guarantee",
    "mem_limit",
    "mem_guarantee",
    "extra_resource_limits",
    "extra_resource_guarantees",
    "node_selector",
    "tolerations",
    "volumes",
    "volume_mounts",
    "extra_labels",
    "extra_annotations",
    "lifecycle_hooks",
    "storage_capacity",
    "uid",
    "allow_privilege_escalation",
    "pod_security_context",
    "container_security_context",
    "cmd",
)
_APPEND_TRAITS = ("tolerations", "image_pull_secrets")
# Query arguments of /hub/spawn that are JupyterHub's own, not server options: the redirect target,
# the XSRF token and (JupyterHub 6, named servers) the server's display name.
_NOT_OPTIONS = ("next", "_xsrf", "display_name")
# JupyterHub 6's REST API (jupyterhub#5443) also takes {"display_name": ..., "user_options": ...} as
# the body of a server start, where user_options may be null (start with the remembered ones). Its new
# PUT/PATCH store user_options without a start: they count as remembered, so they are planned
# leniently, which still grants nothing the owner is not entitled to.
_SERVER_BODY_SCHEMA = JUPYTERHUB_VERSION >= (6,)


def _body_has_options(body):
    """Whether a POST body carries server options (a form post always does)."""
    body = (body or b"").strip()
    if body in (b"", b"{}", b"null"):
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return True
    if _SERVER_BODY_SCHEMA and isinstance(data, dict) and ("user_options" in data or "display_name" in data):
        return bool(data.get("user_options"))
    return True


def literal(value):
    """Protect a value from KubeSpawner's `{username}`-style expansion of volumes and mounts."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    return value


def _merge_named(current, additions):
    """Add volume-like dicts to KubeSpawner's volumes/volume_mounts, which may be a list or a dict."""
    if isinstance(current, dict):
        merged = dict(current)
        for item in additions:
            merged[f"primehub-{item['name']}"] = item
        return merged
    return list(current or []) + list(additions)


class PrimeHubSpawner(PrimeHubOptionsForm, PrimeHubHabits, FastSchedulingFailure, GroupQuotaGuard, KubeSpawner):
    """Spawn user servers from PrimeHub's groups, instance types, images and datasets."""

    role_prefix = Unicode(
        "",
        config=True,
        help="Optional grant prefix P: roles then read P:it:<name>, P:img:<name>, P:ds:<name>, P:ds:rw:<name>.",
    )
    git_sync_host_root = Unicode(
        DEFAULT_GIT_SYNC_HOST_ROOT,
        config=True,
        help="Host folder where git-sync keeps git datasets (one subfolder per dataset); overridable per dataset by annotation.",
    )
    git_sync_on_nodes = Bool(
        False,
        config=True,
        help=(
            "Whether a git-sync fills git_sync_host_root on every node (the chart's gitSync.enabled or gitSync.external). "
            "The hub cannot see nodes' folders: without this, git datasets are left out of launches with a notice "
            "rather than mounted as missing or empty folders."
        ),
    )
    dataset_host_path_prefixes = List(
        Unicode(),
        [],
        config=True,
        help=(
            "Node folders hostPath datasets (and git datasets with their own git-sync root) may mount, e.g. "
            "['/srv/datasets/']. Empty: no hostPath dataset is mounted. Whoever may write Datasets is not a node administrator."
        ),
    )
    dataset_mount_roots = List(
        Unicode(),
        list(DEFAULT_MOUNT_ROOTS),
        config=True,
        help="Folders in the user's container datasets may be mounted under (annotation dataset.primehub.io/mountRoot).",
    )
    explicit_zero_requests = Bool(
        False,
        config=True,
        help=(
            "When an instance type has no requests, write requests of 0 into the pod. By default they are "
            "left out, as PrimeHub did, and Kubernetes then requests the limits."
        ),
    )
    dataset_home_symlinks = Bool(
        True,
        config=True,
        help="Link datasets annotated homeSymlink into the home folder (a postStart hook; failures are ignored).",
    )

    primehub_user = Any(None, allow_none=True, help="Entitlements to use instead of asking Keycloak (CLI and tests).")
    primehub_catalog = Any(
        None, allow_none=True, help="Catalog to use instead of the watched custom resources (CLI and tests)."
    )
    primehub_pods = Any(
        None, allow_none=True, help="Pods (API dicts) to show usage from instead of the pod reflector (tests)."
    )
    options_explicit = Any(
        None,
        allow_none=True,
        help="Force strict (True) or remembered-choice (False) checking of user_options; None decides per request.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._baseline = {name: copy.deepcopy(getattr(self, name)) for name in PLAN_TRAITS}
        self.plan = None
        self._plan_env = {}
        self._user_env = {}
        self._pod_created = False
        self._applied_options = None  # user_options the apply_user_options hook applied for the coming start
        quiet_refusals(self.log)
        if self.profile_list:
            self.log.warning("PrimeHubSpawner ignores profile_list; choices come from PrimeHub groups")

    # --- inputs -----------------------------------------------------------------------------

    async def load_primehub_user(self):
        """Entitlements of the server's owner (self.user), whoever is making the request."""
        if self.primehub_user is not None:
            return self.primehub_user
        # entitlements only where the authenticator can leave admin status out (one call fewer)
        loader = getattr(self.authenticator, "load_entitlements", None) or getattr(
            self.authenticator, "load_user_info", None
        )
        if loader is None:
            raise ConfigurationError("PrimeHubSpawner needs PrimeHubAuthenticator to read users' groups from Keycloak.")
        # the id the pre-spawn refresh of this request just stored, else the stored auth state's
        user_id = refreshed_id(self.handler, self.user.name)
        if user_id is None:
            try:
                auth_state = await self.user.get_auth_state()
                user_id = ((auth_state or {}).get(AUTH_STATE_KEY) or {}).get("id")
            except Exception:
                self.log.debug("No auth state for %s", self.user.name, exc_info=True)
        return await loader(self.user.name, user_id)

    async def load_catalog(self):
        if self.primehub_catalog is not None:
            return self.primehub_catalog
        return await CatalogWatcher.shared(self.namespace, log=self.log, parent=self).catalog()

    def _options_are_explicit(self):
        """Were user_options just submitted (strict) or remembered from the last launch (lenient)?"""
        if self.options_explicit is not None:
            return bool(self.options_explicit)
        request = getattr(self.handler, "request", None)
        if request is None:
            return False
        if request.method == "POST" and _body_has_options(request.body):
            return True
        return any(key not in _NOT_OPTIONS for key in request.query_arguments)

    def _plan(self, user, catalog, raw_options, strict):
        return plan_launch(
            user,
            catalog,
            raw_options,
            prefix=self.role_prefix,
            strict=strict,
            git_sync_host_root=self.git_sync_host_root,
            host_path_prefixes=self.dataset_host_path_prefixes,
            mount_roots=self.dataset_mount_roots,
            git_sync_on_nodes=self.git_sync_on_nodes,
            log=self.log,
        )

    # --- the pod and event watches --------------------------------------------------------

    async def _start_reflector(self, kind, reflector_class, replace=False, **kwargs):
        # KubeSpawner's pod and event reflectors, made to count their changes and tell listeners:
        # the form's usage is kept until a pod changes, and fast failure wakes on the event.
        return await super()._start_reflector(kind, notifying(reflector_class), replace=replace, **kwargs)

    # --- applying a launch --------------------------------------------------------------------

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # JupyterHub (5.3+) calls this hook as hook(spawner, user_options) on every spawn, whether the
        # options came from the form or the REST API, before pre_spawn_hook and start. Unset, it logs
        # "Received unhandled user_options" for every spawn.
        return type(self).apply_primehub_options

    async def apply_primehub_options(self, user_options):
        """JupyterHub's apply_user_options hook: check user_options against the owner's entitlements, apply them."""
        self._applied_options = None
        await self.decide_launch(user_options)
        self._applied_options = copy.deepcopy(self.user_options)

    async def load_user_options(self):
        """Called by KubeSpawner's start: the launch decided by the hook above, or decided here.

        Without JupyterHub's hook (the CLI, a start from code, an operator's own apply_user_options)
        this is where the options are checked and applied. Either way no pod is made from options
        that were not checked.
        """
        applied, self._applied_options = self._applied_options, None
        if applied is not None and applied == self.user_options and self.plan is not None:
            return
        await self.decide_launch(self.user_options)

    async def decide_launch(self, user_options):
        """Decide the launch from user_options (re-checked on the server) and apply it to the traits."""
        user = await self.load_primehub_user()
        catalog = await self.load_catalog()
        plan = self._plan(user, catalog, user_options, strict=self._options_are_explicit())
        for note in plan.dropped:
            self.log.info("%s: remembered choice dropped: %s", self._log_name, note)
        plan = await self.without_missing_datasets(plan)
        self.choose_home_claim()
        self.apply_plan(plan)
        if self.user_options != plan.options:
            self.user_options = plan.options
            if self.orm_spawner is not None:
                self.orm_spawner.user_options = plan.options

    def instance_type_to_override(self, instance_type):
        """KubeSpawner trait values for an instance type."""
        return instance_type_override(instance_type, explicit_zero_requests=self.explicit_zero_requests)

    def image_to_override(self, image, instance_type):
        """KubeSpawner trait values for an image launched with an instance type."""
        reason = image.incompatibility(instance_type)
        if reason:
            raise Refused(f"Cannot launch: {reason}.")
        override = {"image": image.url_for(instance_type)}
        if image.pull_secret:
            override["image_pull_secrets"] = [{"name": image.pull_secret}]
        return override

    def apply_kubespawner_override(self, override):
        """Set traits like KubeSpawner's profile overrides: dicts merge, tolerations and pull secrets add up."""
        for name, value in override.items():
            if callable(value):
                value = value(self)
            current = getattr(self, name)
            if isinstance(value, dict) and isinstance(current, dict):
                value = {**current, **value}
            elif name in _APPEND_TRAITS and isinstance(value, list):
                value = list(current or []) + value
            setattr(self, name, value)

    def apply_plan(self, plan):
        for name, value in self._baseline.items():
            setattr(self, name, copy.deepcopy(value))
        self.plan = plan
        self.apply_kubespawner_override(self.instance_type_to_override(plan.instance_type))
        self.apply_kubespawner_override(self.image_to_override(plan.image, plan.instance_type))
        habit_volumes, habit_mounts = self.habit_volumes(plan)
        habit_env = self.apply_habits(plan)
        self.volumes = _merge_named(self.volumes, literal(plan.volumes + habit_volumes))
        self.volume_mounts = _merge_named(self.volume_mounts, literal(plan.volume_mounts + habit_mounts))
        self.extra_labels = {
            **self.extra_labels,
            LABEL_USER: label_value(self.user.name),
            LABEL_GROUP: label_value(plan.group.name),
        }
        self.storage_capacity = home_capacity(plan.user.attributes, self._baseline["storage_capacity"])
        self._user_env = dict(plan.user_env)
        self._plan_env = {k: v for k, v in plan.env.items() if k not in plan.user_env}
        self._plan_env.update(habit_env)

    def get_env(self):
        env = super().get_env()
        # added after KubeSpawner's expansion: dataset values may contain '{' and '}'. What JupyterHub
        # and KubeSpawner set (API URL, token, scopes) always wins over the plan; the user's own
        # variables never replace one set by JupyterHub, KubeSpawner, the operator or the launch.
        for name, value in self._user_env.items():
            env.setdefault(name, value)
        env.update(
            {k: v for k, v in self._plan_env.items() if k not in env or not k.startswith(("JUPYTERHUB_", "JPY_"))}
        )
        return env
