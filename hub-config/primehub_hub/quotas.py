"""Quotas: parsing group attributes, counting usage from pods, and deciding whether a launch fits.

Everything here is pure except `QuotaLocks`, which only hands out asyncio locks.

Two memory notations meet here and must not be confused:
- PrimeHub's (group attributes, InstanceType limits): a bare `G` means GiB, as in JupyterHub's
  ByteSpecification, so `8G` is 8 * 2**30 bytes. `Gi` is accepted too.
- Kubernetes quantities (limits read back from pods): `G` is 10**9, `Gi` is 2**30.
"""

import asyncio
import math
import re
import weakref
from dataclasses import dataclass

from kubespawner.slugs import escape_slug, is_valid_label, safe_slug

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

_BINARY = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": 1024**5, "E": 1024**6}
_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}

_PRIMEHUB_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([KMGTPE]?)(i?)(B?)\s*$", re.IGNORECASE)
_K8S_QUANTITY = re.compile(r"^\s*([+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|m|k|K|M|G|T|P|E)?\s*$")

LABEL_USER = "primehub.io/user"
LABEL_GROUP = "primehub.io/group"
ACTIVE_PHASES = ("Pending", "Running")
PRIMEHUB_LABEL_PREFIX = "escaped-"


def primehub_label(name):
    """The value of `primehub.io/user` / `primehub.io/group` for a user or group name.

    PrimeHub (its hub, jobs and model deployments) wrote `escaped-` + the name escaped with the
    legacy scheme (every character but a-z and 0-9 as `-XX`, then lower-cased): `data_science`
    -> `escaped-data-5fscience`. Writing the same value makes usage count across all of them and
    keeps NetworkPolicies that select a group's pods matching. A name too long for a label value
    (63 characters) gets a hashed slug instead, which PrimeHub never produced.
    """
    value = PRIMEHUB_LABEL_PREFIX + escape_slug(name)
    if is_valid_label(value):
        return value
    return safe_slug(value, is_valid=is_valid_label, max_length=63)


def label_value(name):
    """The `primehub.io/user` / `primehub.io/group` label of a name, as PrimeHub wrote it."""
    return primehub_label(name)


def labelled_for(label, name):
    """True when a label value names `name`: PrimeHub's spelling, or the plain slug this project's
    previous release wrote (its project volumes carry no owner annotation yet)."""
    return label in (label_value(name), safe_slug(name, is_valid=is_valid_label, max_length=63))


# Group attributes: per user within the group, and for the group as a whole.
USER_QUOTA_PREFIX = "quota-"
PROJECT_QUOTA_PREFIX = "project-quota-"
QUOTA_RESOURCES = ("cpu", "gpu", "memory")
QUOTA_ATTRIBUTES = tuple(p + r for p in (USER_QUOTA_PREFIX, PROJECT_QUOTA_PREFIX) for r in QUOTA_RESOURCES)


def parse_memory(value):
    """Bytes from a PrimeHub memory value: `8G`/`8Gi` = 8 GiB, `512M`, `1.5G`, or plain bytes.

    Raises ValueError for anything else, including negative numbers.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a memory size: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"not a memory size: {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"not a memory size: {value!r}")
    match = _PRIMEHUB_MEMORY.match(value)
    if not match:
        raise ValueError(f"not a memory size: {value!r} (expected e.g. 8G, 512M, 8Gi or bytes)")
    number, unit, _binary, _b = match.groups()
    return int(float(number) * _BINARY[unit.upper()])


def parse_k8s_memory(value):
    """Bytes from a Kubernetes quantity (`1Gi`, `1G` = 10**9, `1073741824`, `500M`)."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    match = _K8S_QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = match.groups()
    number = float(number)
    if not suffix:
        return int(number)
    if suffix == "m":
        return int(number / 1000)
    if suffix.endswith("i"):
        return int(number * _BINARY[suffix[0]])
    return int(number * _DECIMAL[suffix])


def parse_cpu(value):
    """Cores from a number or a Kubernetes CPU quantity (`500m` = 0.5)."""
    if isinstance(value, bool):
        raise ValueError(f"not a CPU amount: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"not a CPU amount: {value!r}")
        return float(value)
    text = str(value).strip()
    try:
        if text.endswith("m"):
            cores = float(text[:-1]) / 1000
        else:
            cores = float(text)
    except ValueError:
        raise ValueError(f"not a CPU amount: {value!r}") from None
    if cores < 0 or not math.isfinite(cores):
        raise ValueError(f"not a CPU amount: {value!r}")
    return cores


def parse_count(value):
    """A non-negative whole number (GPUs)."""
    if isinstance(value, bool):
        raise ValueError(f"not a whole number: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"not a whole number: {value!r}")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]+", text):
            raise ValueError(f"not a whole number: {value!r}")
        value = int(text)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"not a whole number: {value!r}")
    return value


def format_cpu(cores):
    if cores is None:
        return "unlimited"
    text = f"{cores:.3f}".rstrip("0").rstrip(".")
    return f"{text} CPU"


def format_memory(nbytes):
    if nbytes is None:
        return "unlimited"
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if nbytes >= size:
            text = f"{nbytes / size:.2f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{nbytes} bytes"


def format_gpu(count):
    if count is None:
        return "unlimited"
    return f"{count} GPU"


def k8s_memory_quantity(nbytes):
    """The shortest exact Kubernetes quantity for a byte count (`10Gi`, `512Mi`, or bytes)."""
    for suffix, size in (("Ti", TiB), ("Gi", GiB), ("Mi", MiB), ("Ki", KiB)):
        if nbytes and nbytes % size == 0:
            return f"{nbytes // size}{suffix}"
    return str(nbytes)


@dataclass(frozen=True)
class Amount:
    """CPU cores, GPU count and memory bytes of a request, a quota or a usage."""

    cpu: float = 0.0
    gpu: int = 0
    memory: int = 0

    def __add__(self, other):
        return Amount(self.cpu + other.cpu, self.gpu + other.gpu, self.memory + other.memory)

    def to_dict(self):
        return {"cpu": round(self.cpu, 6), "gpu": self.gpu, "memory": self.memory}


ZERO = Amount()


@dataclass(frozen=True)
class Quota:
    """Limits per resource; None means unlimited, 0 means none allowed."""

    cpu: float | None = None
    gpu: int | None = None
    memory: int | None = None
    # A malformed attribute is recorded here; its resource is then treated as 0 (fail closed).
    errors: tuple = ()

    @property
    def unlimited(self):
        return self.cpu is None and self.gpu is None and self.memory is None

    def to_dict(self):
        return {"cpu": self.cpu, "gpu": self.gpu, "memory": self.memory}


def parse_quota(attributes, prefix=USER_QUOTA_PREFIX):
    """Quota from group attributes `<prefix>cpu`, `<prefix>gpu`, `<prefix>memory`.

    A missing or empty attribute is unlimited. A malformed one counts as 0 so that a typo never
    grants unlimited resources; the error text says which attribute to fix.
    """
    values = {}
    errors = []
    parsers = {"cpu": parse_cpu, "gpu": parse_count, "memory": parse_memory}
    for resource in QUOTA_RESOURCES:
        parse = parsers[resource]
        key = prefix + resource
        raw = attributes.get(key)
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            values[resource] = None
            continue
        try:
            values[resource] = parse(raw)
        except ValueError:
            values[resource] = 0
            errors.append(f"group attribute {key}={raw!r} is not valid")
    return Quota(errors=tuple(errors), **values)


def user_quota(group):
    return parse_quota(group.attributes, USER_QUOTA_PREFIX)


def project_quota(group):
    return parse_quota(group.attributes, PROJECT_QUOTA_PREFIX)


def _is_gpu_resource(name, declared=()):
    # `declared`: what instance types name as their GPU resource (MIG slices such as
    # nvidia.com/mig-1g.5gb, gpu.intel.com/i915), which the naming rule alone would miss
    return name == "gpu" or name.endswith("/gpu") or name in declared


def container_limits(container, gpu_resources=()):
    limits = ((container or {}).get("resources") or {}).get("limits") or {}
    cpu = memory = gpu = 0
    for name, value in limits.items():
        try:
            if name == "cpu":
                cpu += parse_cpu(value)
            elif name == "memory":
                memory += parse_k8s_memory(value)
            elif _is_gpu_resource(name, gpu_resources):
                gpu += int(float(value))
        except (TypeError, ValueError):
            continue
    return Amount(cpu, gpu, memory)


def pod_limits(pod, gpu_resources=()):
    """Sum of the container limits of a pod (a dict in API field names)."""
    total = ZERO
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        total = total + container_limits(container, gpu_resources)
    return total


def pod_is_active(pod):
    return ((pod or {}).get("status") or {}).get("phase") in ACTIVE_PHASES


def usage_from_pods(pods, group_label, user_label=None, exclude_pod=None, gpu_resources=()):
    """(user usage, group usage) within a group, from pods in API field names.

    Only Pending and Running pods labelled with the group count. `exclude_pod` leaves out the
    server being (re)started so a stale pod of the same name is not counted twice.
    `gpu_resources`: resource names counted as GPUs besides `gpu` and `*/gpu` (the catalog's
    `gpu_resources`).
    """
    user_total = ZERO
    group_total = ZERO
    for pod in pods:
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if labels.get(LABEL_GROUP) != group_label or not pod_is_active(pod):
            continue
        if exclude_pod and metadata.get("name") == exclude_pod:
            continue
        limits = pod_limits(pod, gpu_resources)
        group_total = group_total + limits
        if user_label is not None and labels.get(LABEL_USER) == user_label:
            user_total = user_total + limits
    return user_total, group_total


def usage_by_group(pods, group_labels, user_label=None, exclude_pod=None, gpu_resources=()):
    """{group label: (user usage, group usage)} for several groups in one pass over the pods.

    The same counting as `usage_from_pods` (GPUs by declared resource too), for a user in many
    groups: the cost is the number of pods, not pods x groups.
    """
    totals = {label: (ZERO, ZERO) for label in group_labels}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        label = labels.get(LABEL_GROUP)
        if label not in totals or not pod_is_active(pod):
            continue
        if exclude_pod and metadata.get("name") == exclude_pod:
            continue
        limits = pod_limits(pod, gpu_resources)
        user_total, group_total = totals[label]
        if user_label is not None and labels.get(LABEL_USER) == user_label:
            user_total = user_total + limits
        totals[label] = (user_total, group_total + limits)
    return totals


_EPSILON = 1e-9


def quota_problems(request, quota, usage=ZERO, *, whose, what):
    """Sentences for each resource where `usage + request` exceeds `quota`; empty if it fits.

    `whose` names the quota ("your quota in group 'ML Team'"), `what` the request
    ("instance type 'GPU Huge'").
    """
    problems = [f"{whose}: {error}" for error in quota.errors]
    checks = (
        ("CPU", quota.cpu, request.cpu, usage.cpu, format_cpu),
        ("GPU", quota.gpu, request.gpu, usage.gpu, format_gpu),
        ("memory", quota.memory, request.memory, usage.memory, format_memory),
    )
    for label, limit, asked, used, fmt in checks:
        if limit is None or asked <= 0:
            continue
        if used + asked > limit + _EPSILON:
            in_use = f", {fmt(used)} already in use" if used > 0 else ""
            problems.append(f"not enough {label} quota: {what} needs {fmt(asked)}{in_use}, and {whose} is {fmt(limit)}")
    return problems


def launch_quota_problems(instance_type, group, user_usage=ZERO, group_usage=ZERO, quotas=None):
    """(user quota sentences, group quota sentences) for launching `instance_type` under `group`.

    The one place the "your quota" / "the group's quota" sentences are built: the form's disabled
    reasons, the spawner's binding check and `explain` all read them from here. `quotas` passes
    already-parsed (user quota, project quota) to save parsing them again.
    """
    mine, groups = quotas if quotas is not None else (user_quota(group), project_quota(group))
    what = f"instance type '{instance_type.label}'"
    return (
        quota_problems(instance_type.limits, mine, user_usage, whose=f"your quota in group '{group.label}'", what=what),
        quota_problems(
            instance_type.limits, groups, group_usage, whose=f"the quota of group '{group.label}'", what=what
        ),
    )


class QuotaLocks:
    """One asyncio.Lock per (namespace, group), so quota check + pod creation is atomic per group.

    Locks are kept per event loop: an asyncio.Lock used from two loops raises, and tests and the
    CLI each run their own loop.
    """

    def __init__(self):
        self._by_loop = weakref.WeakKeyDictionary()

    def lock_for(self, *key):
        loop = asyncio.get_running_loop()
        locks = self._by_loop.setdefault(loop, {})
        lock = locks.get(key)
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        return lock


quota_locks = QuotaLocks()
