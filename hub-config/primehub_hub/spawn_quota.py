"""Quota usage for the form, and the binding quota check and the group volumes, right before
KubeSpawner creates the pod.

A mixin of PrimeHubSpawner (spawner.py): `_usage_for_form` counts the user's groups' usage in one
pass over the pod reflector's pods, kept until a pod changes; `_make_create_pod_request` (KubeSpawner's, pinned by
tests/unit/test_upstream_interfaces.py) first makes sure the group's shared volumes exist, then,
for a group with quotas, holds the group's lock while it counts the group's Pending/Running pods
and creates the pod, so two concurrent spawns cannot both pass a check that only one fits.
"""

import asyncio
import json
from functools import partial

from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client.rest import ApiException
from kubespawner.objects import make_pvc
from traitlets import List, Unicode
from traitlets.config import LoggingConfigurable

from .entitlements import launch_groups
from .errors import CatalogUnavailable, ConfigurationError, QuotaExceeded
from .quotas import (
    LABEL_GROUP,
    label_value,
    labelled_for,
    launch_quota_problems,
    project_quota,
    quota_locks,
    usage_by_group,
    usage_from_pods,
    user_quota,
)
from .volumes import ANNOTATION_GROUP_KEY, volume_clash


class GroupQuotaGuard(LoggingConfigurable):
    """Quota usage, shared volumes and the group quota, checked under the group's lock at pod creation."""

    shared_volume_storage_class = Unicode(
        "", config=True, help="Storage class of group shared volumes (project-<group>); empty uses the cluster default."
    )
    shared_volume_access_modes = List(
        Unicode(), ["ReadWriteMany"], config=True, help="Access modes of group shared volumes."
    )

    async def _active_pods(self):
        if self.primehub_pods is not None:
            return list(self.primehub_pods)
        await self._start_watching_pods()
        return list(self.pod_reflector.pods.values())

    async def _usage_for_form(self, user, catalog):
        """{group: (user usage, group usage)}, kept until the pod reflector sees a change."""
        groups = tuple(label_value(g.name) for g in launch_groups(user))
        me = label_value(self.user.name)
        gpu_resources = tuple(sorted(catalog.gpu_resources))
        version = getattr(self.pod_reflector if self.primehub_pods is None else None, "version", None)
        memo = getattr(self, "_usage_memo", None)
        memo_key = (version, groups, me, self.pod_name, gpu_resources)
        if version is not None and memo is not None and memo[0] == memo_key:
            return memo[1]
        try:
            pods = await self._active_pods()
        except Exception:
            self.log.warning("Cannot read pods to show quota usage", exc_info=True)
            return {}
        by_label = usage_by_group(pods, groups, me, exclude_pod=self.pod_name, gpu_resources=gpu_resources)
        usage = {g.name: by_label[label_value(g.name)] for g in launch_groups(user)}
        version = getattr(self.pod_reflector if self.primehub_pods is None else None, "version", None)
        if version is not None:
            self._usage_memo = ((version, groups, me, self.pod_name, gpu_resources), usage)
        return usage

    def _check_quota(self, plan, pods, gpu_resources=()):
        """`gpu_resources`: the catalog's GPU resource names (MIG slices, i915...), counted as GPUs."""
        group_label = label_value(plan.group.name)
        user_usage, group_usage = usage_from_pods(
            pods,
            group_label,
            label_value(self.user.name),
            exclude_pod=self.pod_name,
            gpu_resources={plan.instance_type.gpu_resource_name, *gpu_resources},
        )
        mine, groups = launch_quota_problems(plan.instance_type, plan.group, user_usage, group_usage)
        problems = mine + groups
        if problems:
            raise QuotaExceeded("Cannot start the server: " + "; ".join(problems) + ".")

    async def _list_group_pods(self, group_name):
        # called under the group's quota lock: a hanging API server must not hold every spawn of the group
        # asyncio.timeout, not wait_for: before Python 3.12, wait_for loses a cancellation (the user
        # stopping the spawn) that arrives as the read completes
        try:
            async with asyncio.timeout(self.k8s_api_request_timeout):
                return await self._read_group_pods(group_name)
        except TimeoutError:
            raise CatalogUnavailable(
                f"The hub could not count the servers of group '{group_name}' against its quota in time: "
                "Kubernetes did not answer. Please try again in a minute."
            ) from None

    async def _read_group_pods(self, group_name):
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

    async def _check_volume_owner(self, shared):
        """The existing PVC must belong to this group (annotation, else label): ML_Team and ml-team
        both map to project-ml-team, and neither may mount the other's."""
        try:
            pvc = await self.api.read_namespaced_persistent_volume_claim(shared.claim_name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        metadata = pvc.metadata
        owner = (metadata.annotations or {}).get(ANNOTATION_GROUP_KEY)
        label = (metadata.labels or {}).get(LABEL_GROUP)
        same_name = not label or labelled_for(label, shared.group)
        if owner == shared.group_key or (not owner and same_name):
            return
        other = await self._owner_group(owner) if owner else {}
        if other is None and same_name:
            # The recorded owner is gone from the realm and a group of the same name asks: restoring
            # or re-importing a realm gives every group a new id, and its members keep their files.
            self.log.warning(
                "Project volume %s was owned by group id %s, which Keycloak no longer has; "
                "group %s (id %s) of the same name takes it over",
                shared.claim_name,
                owner,
                shared.group,
                shared.group_key,
            )
            await self.api.patch_namespaced_persistent_volume_claim(
                shared.claim_name,
                self.namespace,
                {"metadata": {"annotations": {ANNOTATION_GROUP_KEY: shared.group_key}}},
            )
            return
        other_name = (other or {}).get("path", "").lstrip("/") or label or "a group that no longer exists"
        if other_name == shared.group:
            other_name += " (another group of that name)"
        self.log.error(
            "Project volume %s belongs to another group than %s (%s, id %s)",
            shared.claim_name,
            shared.group,
            other_name,
            owner,
        )
        raise volume_clash(shared, other_name)

    async def _owner_group(self, group_id):
        """The Keycloak group recorded as a volume's owner: None when the realm no longer has it,
        {} when there is no Keycloak to ask (the recorded owner then stands)."""
        admin = getattr(self.authenticator, "keycloak_admin", None)
        if admin is None:
            return {}
        return await admin.group_by_id(group_id)

    async def _ensure_shared_volumes(self, plan):
        for shared in plan.shared_volumes:
            pvc = make_pvc(
                name=shared.claim_name,
                storage_class=self.shared_volume_storage_class or None,
                access_modes=list(self.shared_volume_access_modes),
                selector=None,
                storage=shared.capacity,
                labels={LABEL_GROUP: label_value(shared.group), "app.kubernetes.io/managed-by": "primehub-hub"},
                annotations={ANNOTATION_GROUP_KEY: shared.group_key} if shared.group_key else None,
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
            await self._check_volume_owner(shared)

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
        gpu_resources = (await self.load_catalog()).gpu_resources
        async with quota_locks.lock_for(self.namespace, plan.group.name):
            self._check_quota(plan, await self._list_group_pods(plan.group.name), gpu_resources)
            created = await super()._make_create_pod_request(pod, request_timeout)
            if created:
                self._pod_created = True
            return created
