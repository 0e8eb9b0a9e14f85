"""PrimeHubSpawner: KubeSpawner that launches what the user's groups entitle them to.

What it adds to KubeSpawner, and where:

- the options form (`options_form`, form.py) and its server-side check (`options_from_form`,
  and again in `load_user_options`, which KubeSpawner's start calls first), both from the
  entitlements of the user who will own the server (`self.user`), never of the requester;
- `apply_plan`: instance type, image, datasets, group volumes, home capacity, labels and
  environment onto KubeSpawner's traits, starting each launch from the configured baseline;
- quota enforcement under a per-group lock held until the pod exists
  (`_make_create_pod_request`), counting the group's Pending/Running pods;
- fast failure: while the pod is pending, the scheduler's verdict is watched, and an
  unschedulable pod fails the spawn in about a second with the reason in words.
"""

import asyncio
import copy
import json
import time
from functools import partial

from jupyterhub import version_info as JUPYTERHUB_VERSION
from jupyterhub.utils import exponential_backoff
from kubespawner import KubeSpawner
from kubespawner.objects import make_pvc
from kubernetes_asyncio.client.rest import ApiException
from traitlets import Any, Bool, Enum, Float, List, Unicode, default

from .datasets import DEFAULT_GIT_SYNC_HOST_ROOT
from .entitlements import launch_groups
from .errors import ConfigurationError, QuotaExceeded, Refused, SchedulingFailed
from .form import build_form, form_options, render_form
from .plan import leave_out_datasets, normalize_options, plan_launch
from .quotas import LABEL_GROUP, LABEL_USER, primehub_label, project_quota, quota_locks, quota_problems, usage_from_pods, user_quota
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
from .userenv import env_text
from .resources import CatalogWatcher, instance_type_override
from .scheduling import (
    describe,
    failed_scheduling_message,
    pod_is_scheduled,
    pod_unschedulable_message,
    read_verdict,
    scale_up_triggered,
)
from .volumes import HOME_NAMINGS, home_capacity, home_claim_name

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
    "cmd",
)
_APPEND_TRAITS = ("tolerations", "image_pull_secrets")
ANNOTATION_NOTICES = "hub.primehub.io/notices"
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


def label_value(name):
    """The `primehub.io/user` / `primehub.io/group` value of a name, as PrimeHub wrote it."""
    return primehub_label(name)


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


class PrimeHubSpawner(KubeSpawner):
    """Spawn user servers from PrimeHub's groups, instance types, images and datasets."""

    role_prefix = Unicode(
        "",
        config=True,
        help="Optional grant prefix P: roles then read P:it:<name>, P:img:<name>, P:ds:<name>, P:ds:rw:<name>.",
    )
    scheduling_failure_grace = Float(
        0.0,
        config=True,
        help=(
            "Seconds an 'unschedulable' verdict must persist before the spawn fails. 0 fails at once; "
            "raise it on clusters whose autoscaler adds nodes."
        ),
    )
    scheduling_poll_interval = Float(
        0.5, config=True, help="Seconds between looks at a pending pod's scheduling status."
    )
    git_sync_host_root = Unicode(
        DEFAULT_GIT_SYNC_HOST_ROOT,
        config=True,
        help="Host folder where git-sync keeps git datasets (one subfolder per dataset); overridable per dataset by annotation.",
    )
    shared_volume_storage_class = Unicode(
        "", config=True, help="Storage class of group shared volumes (project-<group>); empty uses the cluster default."
    )
    shared_volume_access_modes = List(
        Unicode(), ["ReadWriteMany"], config=True, help="Access modes of group shared volumes."
    )
    explicit_zero_requests = Bool(
        False,
        config=True,
        help=(
            "When an instance type has no requests, write requests of 0 into the pod. By default they are "
            "left out, as PrimeHub did, and Kubernetes then requests the limits."
        ),
    )
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
    dataset_home_symlinks = Bool(
        True,
        config=True,
        help="Link datasets annotated homeSymlink into the home folder (a postStart hook; failures are ignored).",
    )

    primehub_user = Any(
        None, allow_none=True, help="Entitlements to use instead of asking Keycloak (CLI and tests)."
    )
    primehub_catalog = Any(
        None, allow_none=True, help="Catalog to use instead of the watched custom resources (CLI and tests)."
    )
    primehub_pods = Any(
        None, allow_none=True, help="Pods (API dicts) to show usage from instead of the pod reflector (tests)."
    )
    primehub_claims = Any(
        None,
        allow_none=True,
        help=(
            "Names of the PVCs that exist (tests); None reads them from Kubernetes, except when "
            "primehub_catalog is given (the CLI, which has no cluster), where none is checked."
        ),
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
        if self.profile_list:
            self.log.warning("PrimeHubSpawner ignores profile_list; choices come from PrimeHub groups")

    # --- inputs -----------------------------------------------------------------------------

    async def load_primehub_user(self):
        """Entitlements of the server's owner (self.user), whoever is making the request."""
        if self.primehub_user is not None:
            return self.primehub_user
        loader = getattr(self.authenticator, "load_user_info", None)
        if loader is None:
            raise ConfigurationError("PrimeHubSpawner needs PrimeHubAuthenticator to read users' groups from Keycloak.")
        user_id = None
        try:
            auth_state = await self.user.get_auth_state()
            user_id = ((auth_state or {}).get("primehub") or {}).get("id")
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
            log=self.log,
        )

    # --- the form ---------------------------------------------------------------------------

    @default("options_form")
    def _options_form_default(self):
        return self._render_primehub_form

    async def _render_primehub_form(self, spawner=None):
        user = await self.load_primehub_user()
        catalog = await self.load_catalog()
        usage = await self._usage_for_form(user)
        model = build_form(user, catalog, prefix=self.role_prefix, remembered=self.user_options, usage=usage)
        note = ""
        current = getattr(self.handler, "current_user", None) if self.handler is not None else None
        if current is not None and getattr(current, "name", self.user.name) != self.user.name:
            note = f"You are starting a server for {self.user.name}: the groups, choices and quotas shown are theirs."
        remembered = normalize_options(self.user_options or {}, strict=False)
        return render_form(model, admin_note=note, user_env=env_text(remembered.get("env")))

    async def _active_pods(self):
        if self.primehub_pods is not None:
            return list(self.primehub_pods)
        await self._start_watching_pods()
        return list(self.pod_reflector.pods.values())

    async def _usage_for_form(self, user):
        try:
            pods = await self._active_pods()
        except Exception:
            self.log.warning("Cannot read pods to show quota usage", exc_info=True)
            return {}
        me = label_value(self.user.name)
        return {
            g.name: usage_from_pods(pods, label_value(g.name), me, exclude_pod=self.pod_name) for g in launch_groups(user)
        }

    @default("options_from_form")
    def _options_from_form_default(self):
        return self._primehub_options_from_form

    async def _primehub_options_from_form(self, formdata):
        """Check a form submission fully before anything is started; returns clean user_options."""
        # A refusal raised here is an HTTPError: JupyterHub (since 5.4, jupyterhub#5146) re-renders the
        # form with its message and answers with its status.
        user = await self.load_primehub_user()
        catalog = await self.load_catalog()
        plan = self._plan(user, catalog, form_options(formdata), strict=True)
        if self.primehub_pods is not None or self.pod_reflector is not None:
            # early, lock-free look; the binding check happens when the pod is created
            self._check_quota(plan, await self._active_pods())
        return plan.options

    # --- applying a launch --------------------------------------------------------------------

    async def load_user_options(self):
        """Called by KubeSpawner's start: decide the launch from user_options and apply it."""
        user = await self.load_primehub_user()
        catalog = await self.load_catalog()
        plan = self._plan(user, catalog, self.user_options, strict=self._options_are_explicit())
        for note in plan.dropped:
            self.log.info("%s: remembered choice dropped: %s", self._log_name, note)
        plan = await self._without_missing_datasets(plan)
        self._choose_home_claim()
        self.apply_plan(plan)
        if self.user_options != plan.options:
            self.user_options = plan.options
            if self.orm_spawner is not None:
                self.orm_spawner.user_options = plan.options

    async def _without_missing_datasets(self, plan):
        claims = plan.dataset_claims()
        if not claims:
            return plan
        if self.primehub_claims is not None:
            missing = {name: claim for name, claim in claims.items() if claim not in self.primehub_claims}
        elif self.primehub_catalog is not None:
            return plan
        else:
            missing = {}
            for name, claim in claims.items():
                if not await self._claim_exists(claim):
                    missing[name] = claim
        for name, claim in missing.items():
            self.log.warning("%s: dataset %s left out of the launch: its PVC %s does not exist in namespace %s",
                             self._log_name, name, claim, self.namespace)
        return leave_out_datasets(plan, missing)

    async def _claim_exists(self, claim):
        try:
            await self.api.read_namespaced_persistent_volume_claim(claim, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            # unsure is not missing: keep the dataset and let Kubernetes report the problem
            self.log.warning("Cannot check dataset volume %s (Kubernetes answered %s); mounting it anyway", claim, e.status)
        return True

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

    def _choose_home_claim(self):
        # KubeSpawner remembers the claim in the server's state once used (_pvc_exists): never rename it.
        if self.storage_pvc_ensure and self.home_pvc_naming == "primehub" and not getattr(self, "_pvc_exists", False):
            self.pvc_name = home_claim_name(self.user.name, "primehub")

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

    @staticmethod
    def _links_hook(links):
        return {"postStart": {"exec": {"command": ["sh", "-c", links_command(links)]}}}

    def apply_plan(self, plan):
        for name, value in self._baseline.items():
            setattr(self, name, copy.deepcopy(value))
        self.plan = plan
        self.apply_kubespawner_override(self.instance_type_to_override(plan.instance_type))
        self.apply_kubespawner_override(self.image_to_override(plan.image, plan.instance_type))
        extra_volumes, extra_mounts = list(plan.volumes), list(plan.volume_mounts)
        configured = self.volume_mounts.values() if isinstance(self.volume_mounts, dict) else self.volume_mounts or []
        shm_volume, shm_mount = shm_pieces(shm_size(plan.instance_type, self.shm_size), list(configured))
        if shm_volume:
            extra_volumes.append(shm_volume)
            extra_mounts.append(shm_mount)
        if self.start_scripts_configmap:
            extra_volumes.append({"name": "primehub-start-scripts", "configMap": {"name": self.start_scripts_configmap, "defaultMode": 0o755}})
            extra_mounts.append({"name": "primehub-start-scripts", "mountPath": START_SCRIPTS_DIR})
        if plan.safe_mode:
            self.volume_mounts = self._safe_mode_mounts(self.volume_mounts)
        if self.start_wrapper:
            self.cmd = wrapped_command(list(self.cmd or ["jupyterhub-singleuser"]))
        self.volumes = _merge_named(self.volumes, literal(extra_volumes))
        self.volume_mounts = _merge_named(self.volume_mounts, literal(extra_mounts))
        sudo_traits, sudo_env = sudo_overrides(self.grant_sudo)
        for name, value in sudo_traits.items():
            setattr(self, name, value)
        self.extra_labels = {
            **self.extra_labels,
            LABEL_USER: label_value(self.user.name),
            LABEL_GROUP: label_value(plan.group.name),
        }
        if plan.notices:
            # kept on the pod too: the start page shows them, `kubectl describe pod` still does later
            self.extra_annotations = {**self.extra_annotations, ANNOTATION_NOTICES: literal("\n".join(plan.notices))}
        self.storage_capacity = home_capacity(plan.user.attributes, self._baseline["storage_capacity"])
        links = list(plan.links) + home_links(plan, dataset_symlinks=self.dataset_home_symlinks)
        if links:
            if "postStart" in (self.lifecycle_hooks or {}):
                self.log.warning("A postStart hook is configured; the links to datasets and group volumes are not made")
            else:
                self.lifecycle_hooks = {**(self.lifecycle_hooks or {}), **self._links_hook(links)}
        self._user_env = dict(plan.user_env)
        self._plan_env = {k: v for k, v in plan.env.items() if k not in plan.user_env}
        self._plan_env.update(sudo_env)
        if self.start_wrapper:
            self._plan_env.update(start_env(plan, safe_mode=plan.safe_mode))
        owned = chown_extra(plan)
        if owned:
            self._plan_env["CHOWN_EXTRA"] = owned

    def get_env(self):
        env = super().get_env()
        # added after KubeSpawner's expansion: dataset values may contain '{' and '}'. The user's
        # own variables never replace one set by JupyterHub, KubeSpawner, the operator or the launch.
        for name, value in self._user_env.items():
            env.setdefault(name, value)
        env.update(self._plan_env)
        return env

    # --- quota, under the group lock ------------------------------------------------------

    def _check_quota(self, plan, pods):
        group_label = label_value(plan.group.name)
        user_usage, group_usage = usage_from_pods(pods, group_label, label_value(self.user.name), exclude_pod=self.pod_name)
        what = f"instance type '{plan.instance_type.label}'"
        problems = quota_problems(
            plan.instance_type.limits, user_quota(plan.group), user_usage, whose=f"your quota in group '{plan.group.label}'", what=what
        ) + quota_problems(
            plan.instance_type.limits, project_quota(plan.group), group_usage, whose=f"the quota of group '{plan.group.label}'", what=what
        )
        if problems:
            raise QuotaExceeded("Cannot start the server: " + "; ".join(problems) + ".")

    async def _list_group_pods(self, group_name):
        response = await self.api.list_namespaced_pod(
            self.namespace,
            label_selector=f"{LABEL_GROUP}={label_value(group_name)}",
            _preload_content=False,
        )
        try:
            body = await response.read()
        finally:
            response.release()
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=body.decode("utf8", "replace")[:200])
        return json.loads(body).get("items") or []

    async def _ensure_shared_volumes(self, plan):
        for shared in plan.shared_volumes:
            pvc = make_pvc(
                name=shared.claim_name,
                storage_class=self.shared_volume_storage_class or None,
                access_modes=list(self.shared_volume_access_modes),
                selector=None,
                storage=shared.capacity,
                labels={LABEL_GROUP: label_value(shared.group), "app.kubernetes.io/managed-by": "primehub-hub"},
            )
            try:
                await exponential_backoff(
                    partial(self._make_create_pvc_request, pvc, self.k8s_api_request_timeout),
                    f"Could not create shared volume {shared.claim_name}",
                    timeout=self.k8s_api_request_retry_timeout,
                )
            except ApiException as e:
                raise ConfigurationError(
                    f"The shared volume of group '{plan.group.label}' ({shared.claim_name}) cannot be created "
                    f"(Kubernetes answered {e.status}). Please tell your administrator."
                ) from e

    async def _make_create_pod_request(self, pod, request_timeout):
        plan = self.plan
        if plan is None:
            return await super()._make_create_pod_request(pod, request_timeout)
        await self._ensure_shared_volumes(plan)
        if user_quota(plan.group).unlimited and project_quota(plan.group).unlimited:
            # Nothing to count: spawns of a group without quotas need not wait for each other.
            created = await super()._make_create_pod_request(pod, request_timeout)
            self._pod_created = bool(created) or self._pod_created
            return created
        async with quota_locks.lock_for(self.namespace, plan.group.name):
            self._check_quota(plan, await self._list_group_pods(plan.group.name))
            created = await super()._make_create_pod_request(pod, request_timeout)
            if created:
                self._pod_created = True
            return created

    # --- start with fast failure -----------------------------------------------------------

    def start(self):
        self.plan = None  # decided afresh by load_user_options; progress() waits for it
        self._start_future = asyncio.ensure_future(self._start_watched())
        return self._start_future

    async def _start_watched(self):
        self._pod_created = False
        start_task = asyncio.ensure_future(self._start())
        watch_task = asyncio.ensure_future(self._watch_scheduling())
        try:
            done, _ = await asyncio.wait({start_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
            if watch_task in done and not start_task.done():
                failure = None if watch_task.cancelled() else watch_task.exception() or watch_task.result()
                if isinstance(failure, SchedulingFailed):
                    start_task.cancel()
                    await asyncio.gather(start_task, return_exceptions=True)
                    await self._remove_pod_after_failure()
                    raise failure
                if failure is not None:
                    self.log.error("Watching the scheduling of %s failed: %r", self.pod_name, failure)
            return await start_task
        finally:
            for task in (start_task, watch_task):
                if not task.done():
                    task.cancel()
            await asyncio.gather(start_task, watch_task, return_exceptions=True)

    async def _remove_pod_after_failure(self):
        try:
            await self.stop(now=True)
        except Exception:
            self.log.exception("Could not remove unschedulable pod %s", self.pod_name)

    def _scheduling_failure(self):
        """A SchedulingFailed for the current pod when the scheduler says it cannot run, else None."""
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
        if pod is None or pod_is_scheduled(pod):
            return None, False
        events = self.events
        message = pod_unschedulable_message(pod) or failed_scheduling_message(events)
        if not message:
            return None, False
        verdict = read_verdict(message, own_claims=self._own_claims())
        if not verdict.final or scale_up_triggered(events):
            return None, False
        instance_type = self.plan.instance_type if self.plan else None
        return SchedulingFailed(describe(verdict, instance_type)), True

    def _own_claims(self):
        """The claims this spawner creates before its pod: the home volume and the group volumes."""
        claims = {self.pvc_name} if self.storage_pvc_ensure else set()
        if self.plan is not None:
            claims |= {shared.claim_name for shared in self.plan.shared_volumes}
        return frozenset(claims)

    async def _watch_scheduling(self):
        first_seen = None
        while True:
            await asyncio.sleep(self.scheduling_poll_interval)
            if not self._pod_created:
                continue
            failure, seen = self._scheduling_failure()
            if not seen:
                first_seen = None
                continue
            now = time.monotonic()
            first_seen = first_seen if first_seen is not None else now
            if now - first_seen >= self.scheduling_failure_grace:
                self.log.warning("Giving up spawn of %s: %s", self.pod_name, failure)
                return failure

