"""The catalog: InstanceType, Image and Dataset custom resources (group primehub.io/v1alpha1).

`parse_*` turn one custom resource (a dict as the API returns it) into an immutable dataclass
with the defaults of the data model, or raise `InvalidResource`; `Catalog.from_objects` skips
invalid resources with one log line naming each. `CatalogWatcher` keeps the three kinds
in memory from a Kubernetes watch, so rendering the form never calls the API.

InstanceType limits are read both from PrimeHub's flat keys (`spec["limits.cpu"]`) and from a
nested form (`spec["limits"]["cpu"]`), so either style of manifest works.
"""

import asyncio
import dataclasses
import logging
import re
from dataclasses import dataclass, field

from .quotas import Amount, parse_count, parse_cpu, parse_memory
from .watch import notifying

GROUP = "primehub.io"
VERSION = "v1alpha1"
PLURALS = {"InstanceType": "instancetypes", "Image": "images", "Dataset": "datasets"}

DATASET_TYPES = ("env", "git", "pv", "hostPath", "nfs")
IMAGE_TYPES = ("cpu", "gpu", "both")
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"

ANNOTATION_LAUNCH_GROUP_ONLY = "dataset.primehub.io/launchGroupOnly"
ANNOTATION_HOME_SYMLINK = "dataset.primehub.io/homeSymlink"
ANNOTATION_MOUNT_ROOT = "dataset.primehub.io/mountRoot"
ANNOTATION_GIT_SYNC_HOST_ROOT = "dataset.primehub.io/gitSyncHostRoot"
ANNOTATION_SHM_SIZE = "instancetype.primehub.io/shmSize"
ANNOTATION_GIT_SYNC_ROOT = "dataset.primehub.io/gitSyncRoot"
DEFAULT_GIT_SYNC_ROOT = "/gitsync/"
DEFAULT_MOUNT_ROOT = "/datasets/"

_log = logging.getLogger(__name__)
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class InvalidResource(ValueError):
    """A custom resource that cannot be used; the message names it and says why."""


def _annotation_true(annotations, key):
    # Only the exact string "true" enables a flag, as in PrimeHub.
    return (annotations or {}).get(key) == "true"


@dataclass(frozen=True)
class InstanceType:
    name: str
    display_name: str = ""
    description: str = ""
    cpu_limit: float = 1.0
    memory_limit: int = 1024**3
    gpu_limit: int = 0
    gpu_resource_name: str = DEFAULT_GPU_RESOURCE
    cpu_request: float = 0.0
    memory_request: int = 0
    node_selector: dict = field(default_factory=dict)
    tolerations: tuple = ()
    shm_size: str = ""  # annotation instancetype.primehub.io/shmSize: a quantity, or "limit"

    @property
    def label(self):
        return self.display_name or self.name

    @property
    def limits(self):
        return Amount(self.cpu_limit, self.gpu_limit, self.memory_limit)

    @property
    def has_gpu(self):
        return self.gpu_limit > 0


@dataclass(frozen=True)
class Image:
    name: str
    url: str
    display_name: str = ""
    description: str = ""
    url_for_gpu: str = ""
    pull_secret: str = ""
    type: str = "both"

    @property
    def label(self):
        return self.display_name or self.name

    def url_for(self, instance_type):
        if instance_type.has_gpu and self.url_for_gpu:
            return self.url_for_gpu
        return self.url

    def incompatibility(self, instance_type):
        """Why this image cannot run with the instance type, or None."""
        if self.type == "gpu" and not instance_type.has_gpu:
            return f"image '{self.label}' needs a GPU and instance type '{instance_type.label}' has none"
        return None


@dataclass(frozen=True)
class Dataset:
    name: str
    type: str
    display_name: str = ""
    description: str = ""
    variables: dict = field(default_factory=dict)
    volume_name: str = ""
    host_path: str = ""
    nfs_server: str = ""
    nfs_path: str = ""
    launch_group_only: bool = False
    home_symlink: bool = False
    mount_root: str = DEFAULT_MOUNT_ROOT
    git_sync_host_root: str = ""
    git_sync_root: str = DEFAULT_GIT_SYNC_ROOT  # where a git dataset's volume is mounted in the pod

    @property
    def label(self):
        return self.display_name or self.name

    @property
    def mount_path(self):
        return self.mount_root + self.name


def _spec_value(spec, dotted):
    """`spec["limits.cpu"]` (PrimeHub's flat keys) or `spec["limits"]["cpu"]`."""
    if dotted in spec:
        return spec[dotted]
    head, _, rest = dotted.partition(".")
    nested = spec.get(head)
    if isinstance(nested, dict) and rest in nested:
        return nested[rest]
    return None


def _metadata(obj, kind):
    if not isinstance(obj, dict):
        raise InvalidResource(f"{kind}: not an object")
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not _RESOURCE_NAME.match(name):
        raise InvalidResource(f"{kind} {name!r}: metadata.name is missing or not a valid name")
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise InvalidResource(f"{kind} {name}: spec is not an object")
    return name, metadata, spec


def _text(spec, key):
    value = spec.get(key)
    return value if isinstance(value, str) else ""


def parse_instance_type(obj):
    name, metadata, spec = _metadata(obj, "InstanceType")
    where = f"InstanceType {name}"

    def number(key, parse, default):
        raw = _spec_value(spec, key)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError as e:
            raise InvalidResource(f"{where}: spec {key} {e}") from None

    cpu_limit = number("limits.cpu", parse_cpu, 1.0)
    memory_limit = number("limits.memory", parse_memory, 1024**3)
    cpu_request = number("requests.cpu", parse_cpu, 0.0)
    memory_request = number("requests.memory", parse_memory, 0)
    gpu_resource_name = _text(spec, "gpuResourceName")
    vendor_gpu = number("limits.gpu", parse_count, None)
    if vendor_gpu is not None:
        gpu_limit = vendor_gpu
        gpu_resource_name = gpu_resource_name or DEFAULT_GPU_RESOURCE
    else:
        gpu_limit = number(f"limits.{DEFAULT_GPU_RESOURCE}", parse_count, 0)
        gpu_resource_name = DEFAULT_GPU_RESOURCE
    if cpu_limit <= 0:
        raise InvalidResource(f"{where}: spec limits.cpu must be more than 0")
    if memory_limit <= 0:
        raise InvalidResource(f"{where}: spec limits.memory must be more than 0")
    if cpu_request > cpu_limit or memory_request > memory_limit:
        raise InvalidResource(f"{where}: requests are larger than limits")

    node_selector = spec.get("nodeSelector") or {}
    if not isinstance(node_selector, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in node_selector.items()
    ):
        raise InvalidResource(f"{where}: spec nodeSelector must map strings to strings")
    tolerations = spec.get("tolerations") or []
    if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
        raise InvalidResource(f"{where}: spec tolerations must be a list of objects")

    return InstanceType(
        name=name,
        display_name=_text(spec, "displayName"),
        description=_text(spec, "description"),
        cpu_limit=cpu_limit,
        memory_limit=memory_limit,
        gpu_limit=gpu_limit,
        gpu_resource_name=gpu_resource_name,
        cpu_request=cpu_request,
        memory_request=memory_request,
        node_selector=dict(node_selector),
        tolerations=tuple(dict(t) for t in tolerations),
        shm_size=_shm_annotation(metadata, where),
    )


def _shm_annotation(metadata, where):
    raw = ((metadata.get("annotations") or {}).get(ANNOTATION_SHM_SIZE) or "").strip()
    if raw and raw != "limit" and not re.fullmatch(r"[0-9]+(\.[0-9]+)?(k|M|G|T|Ki|Mi|Gi|Ti)?", raw):
        raise InvalidResource(f"{where}: annotation {ANNOTATION_SHM_SIZE} must be a size (e.g. 8Gi) or 'limit'")
    return raw


def parse_image(obj):
    name, _metadata_, spec = _metadata(obj, "Image")
    image_type = spec.get("type") or "both"
    if image_type not in IMAGE_TYPES:
        raise InvalidResource(f"Image {name}: spec type {image_type!r} is not one of cpu, gpu, both")
    url = _text(spec, "url")
    url_for_gpu = _text(spec, "urlForGpu")
    if not url and image_type == "gpu":
        url = url_for_gpu  # a GPU-only image may name only its GPU reference
    if not url:
        if isinstance(spec.get("imageSpec"), dict):
            # PrimeHub's console stores url "" until its image builder has pushed the image.
            raise InvalidResource(
                f"Image {name}: not built yet (spec url is empty while spec imageSpec is being built)"
            )
        raise InvalidResource(f"Image {name}: spec url is missing")
    return Image(
        name=name,
        url=url,
        display_name=_text(spec, "displayName"),
        description=_text(spec, "description"),
        url_for_gpu=url_for_gpu,
        pull_secret=_text(spec, "pullSecret"),  # PrimeHub writes "" for none
        type=image_type,
    )


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _is_dns_subdomain(text):
    return len(text) <= 253 and bool(_DNS_SUBDOMAIN.match(text))


def _mount_root(annotations, name):
    root = (annotations or {}).get(ANNOTATION_MOUNT_ROOT) or DEFAULT_MOUNT_ROOT
    if not root.startswith("/"):
        raise InvalidResource(f"Dataset {name}: annotation {ANNOTATION_MOUNT_ROOT} must be an absolute path")
    return root if root.endswith("/") else root + "/"


def parse_dataset(obj):
    name, metadata, spec = _metadata(obj, "Dataset")
    where = f"Dataset {name}"
    annotations = metadata.get("annotations") or {}
    dataset_type = spec.get("type")
    if dataset_type not in DATASET_TYPES:
        raise InvalidResource(f"{where}: spec type {dataset_type!r} is not one of {', '.join(DATASET_TYPES)}")
    variables = spec.get("variables") or {}
    if not isinstance(variables, dict):
        raise InvalidResource(f"{where}: spec variables must be an object")
    host_path = (spec.get("hostPath") or {}).get("path") or ""
    nfs = spec.get("nfs") or {}
    volume_name = _text(spec, "volumeName")
    if dataset_type == "pv" and not volume_name:
        raise InvalidResource(f"{where}: type pv needs spec volumeName")
    if dataset_type == "pv" and not _is_dns_subdomain(f"dataset-{volume_name}"):
        # the claim is looked up by this literal name; a hashed stand-in would never be found
        raise InvalidResource(
            f"{where}: spec volumeName {volume_name!r} does not make a valid claim name dataset-<volumeName> "
            "(lower-case letters, digits, '-' and '.', at most 245 characters)"
        )
    if dataset_type == "hostPath" and not host_path:
        raise InvalidResource(f"{where}: type hostPath needs spec hostPath.path")
    if dataset_type == "nfs" and not (nfs.get("server") and nfs.get("path")):
        raise InvalidResource(f"{where}: type nfs needs spec nfs.server and spec nfs.path")
    return Dataset(
        name=name,
        type=dataset_type,
        display_name=_text(spec, "displayName"),
        description=_text(spec, "description"),
        # values are kept as given; env values must be strings
        variables={str(k): "" if v is None else str(v) for k, v in variables.items()},
        volume_name=volume_name,
        host_path=str(host_path),
        nfs_server=str(nfs.get("server") or ""),
        nfs_path=str(nfs.get("path") or ""),
        launch_group_only=_annotation_true(annotations, ANNOTATION_LAUNCH_GROUP_ONLY),
        home_symlink=_annotation_true(annotations, ANNOTATION_HOME_SYMLINK),
        mount_root=_mount_root(annotations, name),
        git_sync_host_root=annotations.get(ANNOTATION_GIT_SYNC_HOST_ROOT) or "",
        git_sync_root=_folder(
            annotations.get(ANNOTATION_GIT_SYNC_ROOT) or DEFAULT_GIT_SYNC_ROOT, ANNOTATION_GIT_SYNC_ROOT, name
        ),
    )


def _folder(path, annotation, name):
    if not path.startswith("/") or path.rstrip("/") == "":
        raise InvalidResource(f"Dataset {name}: annotation {annotation} must be an absolute folder other than /")
    return path if path.endswith("/") else path + "/"


PARSERS = {"InstanceType": parse_instance_type, "Image": parse_image, "Dataset": parse_dataset}


def _parse_logged(obj, kind, log, seen_errors):
    """The parsed resource, or None (not one of the three kinds, or invalid: logged once)."""
    parser = PARSERS.get(kind)
    if parser is None:
        return None
    try:
        return parser(obj)
    except InvalidResource as e:
        if seen_errors is None or str(e) not in seen_errors:
            log.warning("Skipping invalid custom resource: %s", e)
            if seen_errors is not None:
                seen_errors.add(str(e))
        return None


@dataclass(frozen=True)
class Catalog:
    """What exists: resources by name, each mapping sorted by name."""

    instance_types: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict)

    @property
    def gpu_resources(self):
        """Every resource name an instance type requests its GPUs as: quota usage counts these."""
        return frozenset(t.gpu_resource_name for t in self.instance_types.values() if t.has_gpu)

    @classmethod
    def from_objects(cls, objects, log=None, _seen_errors=None):
        """Build a catalog from custom resources of any of the three kinds; skip the invalid."""
        log = log or _log
        found = {"InstanceType": {}, "Image": {}, "Dataset": {}}
        for obj in objects:
            kind = (obj or {}).get("kind") if isinstance(obj, dict) else None
            resource = _parse_logged(obj, kind, log, _seen_errors)
            if resource is not None:
                found[kind][resource.name] = resource
        return cls(
            instance_types=dict(sorted(found["InstanceType"].items())),
            images=dict(sorted(found["Image"].items())),
            datasets=dict(sorted(found["Dataset"].items())),
        )


# --- the watch-based cache ----------------------------------------------------------------


class _CustomObjectLister:
    """Gives ResourceReflector a `list_namespaced(namespace, **kw)` for one custom resource.

    ResourceReflector calls `getattr(api, list_method_name)(namespace=..., label_selector=...,
    watch=..., ...)`; custom objects additionally need group, version and plural.
    """

    def __init__(self, api, plural):
        self._api = api
        self._plural = plural

    async def list_namespaced(self, namespace, **kwargs):
        return await self._api.list_namespaced_custom_object(GROUP, VERSION, namespace, self._plural, **kwargs)


def _custom_reflector_class():
    # Imported lazily: kubespawner's reflector module pulls in the Kubernetes client.
    from kubespawner.reflector import NamespacedResourceReflector
    from traitlets import Unicode

    class CustomResourceReflector(NamespacedResourceReflector):
        """KubeSpawner's list+watch+resync loop, pointed at a primehub.io custom resource."""

        plural = Unicode(help="Plural name of the primehub.io/v1alpha1 resource to watch.")
        api_group_name = Unicode("CustomObjectsApi", help="Kubernetes API class used for custom objects.")
        list_method_name = Unicode("list_namespaced", help="Method of the lister wrapper used to list and watch.")

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.api = _CustomObjectLister(self.api, self.plural)

    return CustomResourceReflector


class CatalogWatcher:
    """Keeps InstanceTypes, Images and Datasets of one namespace in memory.

    One watcher per namespace and event loop is shared by all spawners. If a watch gives up
    (e.g. the API server was away for long), the next `catalog()` starts it again.
    """

    _instances = {}

    def __init__(self, namespace, log=None, parent=None):
        self.namespace = namespace
        self.log = log or _log
        self.parent = parent
        self.reflectors = {}
        self._start_lock = asyncio.Lock()
        self._errors_logged = set()
        self._cache = None
        self._version = None
        self._parsed = {}
        self._dirty = {}
        self._listening = {}

    @classmethod
    def shared(cls, namespace, log=None, parent=None):
        key = (asyncio.get_running_loop(), namespace)
        watcher = cls._instances.get(key)
        if watcher is None:
            watcher = cls._instances[key] = cls(namespace, log=log, parent=parent)
        return watcher

    def _alive(self):
        return len(self.reflectors) == len(PLURALS) and all(
            r.watch_task is not None and not r.watch_task.done() for r in self.reflectors.values()
        )

    async def start(self):
        async with self._start_lock:
            if self._alive():
                return
            for reflector in self.reflectors.values():
                await reflector.stop()
            self.reflectors = {}
            Reflector = notifying(_custom_reflector_class())
            for kind, plural in PLURALS.items():
                reflector = Reflector(parent=self.parent, namespace=self.namespace, plural=plural, kind=plural)
                await reflector.start()
                self.reflectors[kind] = reflector

    async def stop(self):
        for reflector in self.reflectors.values():
            await reflector.stop()
        self.reflectors = {}

    def version(self):
        """Moves whenever a watch event or a relist changes any of the three kinds."""
        return tuple(getattr(r, "version", None) for r in self.reflectors.values())

    async def catalog(self):
        """The current Catalog: the same object for as long as nothing was changed.

        Cost on an unchanged catalog is constant. After watch events only the resources they
        touched are parsed again; without change notices (first load, a reflector that cannot
        tell) everything is looked at, unchanged resources are not parsed again (by
        resourceVersion), and the Catalog object is kept when nothing really differs.
        """
        try:
            await self.start()
        except Exception as e:
            from .errors import CatalogUnavailable

            self.log.exception("Cannot read primehub.io custom resources in namespace %s", self.namespace)
            raise CatalogUnavailable(
                "The hub cannot read the instance types, images and datasets from Kubernetes "
                f"right now ({type(e).__name__}). Please try again in a minute."
            ) from e
        self._listen()
        version = self.version()
        if self._cache is not None and None not in version and version == self._version:
            return self._cache
        self._version = version
        dirty, self._dirty = self._dirty, {}
        if self._cache is not None and None not in version and all(keys is not None for keys in dirty.values()):
            # watch events: patch what they touched (cost: the touched kinds' size, once)
            self._cache = self._patched(dirty)
            return self._cache
        built = self._build()
        if built != self._cache:
            self._cache = built
        return self._cache

    def _listen(self):
        """Collect which resources each watch event touched (None: look at all of the kind)."""
        current = {}
        for kind, reflector in self.reflectors.items():
            if id(reflector) not in self._listening and hasattr(reflector, "add_listener"):
                reflector.add_listener(lambda key, kind=kind: self._touched(kind, key))
                self._dirty[kind] = None
            current[id(reflector)] = reflector  # held, so an id is never reused while listed
        self._listening = current

    def _touched(self, kind, key):
        keys = self._dirty.setdefault(kind, set())
        if key is None:
            self._dirty[kind] = None
        elif keys is not None:
            keys.add(key)

    def _patched(self, dirty):
        fields = {}
        for kind, keys in dirty.items():
            resources = self.reflectors[kind].resources
            current = dict(getattr(self._cache, _FIELDS[kind]))
            added = False
            for key in keys:
                name = key.partition("/")[2]
                obj = resources.get(key)
                resource = _parse_logged(obj, kind, self.log, self._errors_logged) if obj is not None else None
                if resource is None:
                    current.pop(name, None)
                else:
                    added = added or name not in current  # an edit keeps its place in the order
                    current[name] = resource
            fields[_FIELDS[kind]] = dict(sorted(current.items())) if added else current
        return dataclasses.replace(self._cache, **fields)

    def _build(self):
        parsed = {}
        for kind, reflector in self.reflectors.items():
            for obj in list(reflector.resources.values()):
                metadata = obj.get("metadata") or {}
                memo_key = (kind, metadata.get("name"), metadata.get("resourceVersion"))
                if memo_key[2] is not None and memo_key in self._parsed:
                    parsed[memo_key] = self._parsed[memo_key]
                    continue
                parsed[memo_key] = _parse_logged(obj, kind, self.log, self._errors_logged)
        self._parsed = parsed
        found = {kind: {} for kind in PLURALS}
        for (kind, _name, _rv), resource in parsed.items():
            if resource is not None:
                found[kind][resource.name] = resource
        return Catalog(**{_FIELDS[kind]: dict(sorted(found[kind].items())) for kind in PLURALS})


_FIELDS = {"InstanceType": "instance_types", "Image": "images", "Dataset": "datasets"}


def instance_type_override(instance_type, explicit_zero_requests=False):
    """KubeSpawner trait values (cpu/mem limit and guarantee, extra resources, node selector,
    tolerations) for an instance type. A missing request stays unset, so Kubernetes uses the
    limit, unless `explicit_zero_requests` asks for a literal 0."""
    override = {
        "cpu_limit": instance_type.cpu_limit,
        "cpu_guarantee": instance_type.cpu_request or None,
        "mem_limit": instance_type.memory_limit,
        "mem_guarantee": instance_type.memory_request or None,
        "extra_resource_limits": {instance_type.gpu_resource_name: instance_type.gpu_limit}
        if instance_type.has_gpu
        else {},
        "node_selector": dict(instance_type.node_selector),
        "tolerations": [dict(t) for t in instance_type.tolerations],
    }
    if explicit_zero_requests:
        zero = {}
        if not instance_type.cpu_request:
            zero["cpu"] = "0"
        if not instance_type.memory_request:
            zero["memory"] = "0"
        override["extra_resource_guarantees"] = zero
    return override
