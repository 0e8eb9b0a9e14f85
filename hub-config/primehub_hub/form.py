"""The server options form: group, then instance type, then image.

Why not KubeSpawner's `profile_list` machinery, although one profile per launch group with
`profile_options` for instance type and image maps onto it naturally:

- its choices carry static `kubespawner_override`s, but the image URL depends on the chosen
  instance type (`urlForGpu`), a GPU-only image is invalid with a CPU type, and quotas depend
  on live usage: these are rules across choices, which `plan.plan_launch` owns;
- it does not re-validate a submitted choice key (a forged one ends in a KeyError, a 500),
  whereas every submitted value here must be refused with a clear 4xx;
- its form template is rendered without HTML autoescaping, and group display names and
  descriptions come from Keycloak and custom resources, i.e. from users of the platform;
- it cannot show a disabled choice with the reason it is disabled.

So the form is rendered here from a model computed by the same functions the server uses to
check the submission (`plan.group_offer`), with an autoescaping jinja2 environment. The field
names are `group`, `instance_type@<group>` and `image@<group>`; `spawner.options_from_form`
turns them into `{"group", "instance_type", "image"}`, the user_options the REST API takes too;
the text box `env` (the user's own `NAME=value` variables, userenv.py) is shared by all groups.
"""

import contextlib
import gc
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from jinja2 import Environment, PackageLoader, select_autoescape

from .entitlements import UserDatasets, launch_groups
from .errors import NoLaunchGroup
from .plan import NO_GROUP_MESSAGE, group_offer, normalize_options
from .quotas import ZERO, format_cpu, format_gpu, format_memory

FIELD_SEPARATOR = "@"

_env = Environment(
    loader=PackageLoader("primehub_hub", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class FormChoice:
    name: str
    label: str
    description: str = ""
    reason: str = ""
    selected: bool = False
    gpu: int = 0
    image_type: str = ""
    summary: str = ""


@dataclass
class QuotaRow:
    resource: str
    user_quota: str
    user_used: str
    group_quota: str
    group_used: str


@dataclass
class FormGroup:
    name: str
    label: str
    selected: bool = False
    reason: str = ""
    quota_rows: list = field(default_factory=list)
    quota_errors: list = field(default_factory=list)
    instance_types: list = field(default_factory=list)
    images: list = field(default_factory=list)
    datasets: list = field(default_factory=list)
    unavailable_datasets: list = field(default_factory=list)
    shared_volumes: list = field(default_factory=list)


def _summary(instance_type):
    parts = [format_cpu(instance_type.cpu_limit), format_memory(instance_type.memory_limit)]
    if instance_type.gpu_limit:
        parts.append(format_gpu(instance_type.gpu_limit))
    return ", ".join(parts)


def _quota_rows(offer, user_usage, group_usage):
    uq, pq = offer.user_quota, offer.project_quota
    return [
        QuotaRow(
            "CPU", format_cpu(uq.cpu), format_cpu(user_usage.cpu), format_cpu(pq.cpu), format_cpu(group_usage.cpu)
        ),
        QuotaRow(
            "GPU", format_gpu(uq.gpu), format_gpu(user_usage.gpu), format_gpu(pq.gpu), format_gpu(group_usage.gpu)
        ),
        QuotaRow(
            "Memory",
            format_memory(uq.memory),
            format_memory(user_usage.memory),
            format_memory(pq.memory),
            format_memory(group_usage.memory),
        ),
    ]


def build_form(user, catalog, *, prefix="", remembered=None, usage=None, git_sync_on_nodes=True):
    """The form model. `usage` maps group name -> (user usage, group usage); missing = none.

    Remembered choices are pre-selected only where still offered and usable; others are
    dropped without a word, as the data model asks.
    """
    groups = launch_groups(user)
    if not groups:
        return None
    remembered = normalize_options(remembered or {}, strict=False)
    usage = usage or {}
    datasets = UserDatasets(user, catalog, prefix)
    model = [
        _form_group(user, group, catalog, prefix, datasets, usage, remembered, git_sync_on_nodes) for group in groups
    ]

    wanted = remembered.get("group")
    usable = [g for g in model if not g.reason]
    chosen = next((g for g in usable if g.name == wanted), None) or (usable[0] if usable else model[0])
    chosen.selected = True
    return model


def _form_group(user, group, catalog, prefix, datasets, usage, remembered, git_sync_on_nodes):
    """One group of the form: its quotas, instance types, images and datasets, the remembered ones selected."""
    offer = group_offer(
        user, group, catalog, prefix, datasets=datasets, with_skipped=False, git_sync_on_nodes=git_sync_on_nodes
    )
    user_usage, group_usage = usage.get(group.name, (ZERO, ZERO))
    entry = FormGroup(name=group.name, label=group.label, reason=offer.volume_error)
    entry.quota_rows = _quota_rows(offer, user_usage, group_usage)
    entry.quota_errors = list(offer.user_quota.errors + offer.project_quota.errors)
    is_remembered_group = remembered.get("group") == group.name
    for choice in offer.instance_type_choices(user_usage, group_usage):
        entry.instance_types.append(
            FormChoice(
                choice.name,
                choice.label,
                choice.description,
                choice.reason,
                gpu=choice.resource.gpu_limit,
                summary=_summary(choice.resource),
            )
        )
    _select(entry.instance_types, remembered.get("instance_type") if is_remembered_group else None)
    chosen_type = next((c for c in entry.instance_types if c.selected), None)
    chosen_resource = catalog.instance_types.get(chosen_type.name) if chosen_type else None
    for choice in offer.image_choices(chosen_resource):
        entry.images.append(
            FormChoice(choice.name, choice.label, choice.description, choice.reason, image_type=choice.resource.type)
        )
    _select(entry.images, remembered.get("image") if is_remembered_group else None)
    if not offer.instance_types:
        entry.reason = entry.reason or "no instance type is granted to this group"
    elif not offer.images:
        entry.reason = entry.reason or "no image is granted to this group"
    entry.datasets, entry.unavailable_datasets = _dataset_rows(offer)
    entry.shared_volumes = [{"path": v.mount_path, "capacity": v.capacity} for v in offer.shared_volumes]
    return entry


def _dataset_rows(offer):
    """The group's datasets as the form lists them, and those it names but cannot mount, with why."""
    mounted = [
        {
            "name": m.dataset.name,
            "label": m.dataset.label,
            "type": m.dataset.type,
            "where": "environment variables" if m.dataset.type == "env" else m.dataset.mount_path,
            "access": "read-write" if m.writable else "read-only",
        }
        for m in offer.datasets
    ]
    unavailable = [
        {"label": m.dataset.label, "type": m.dataset.type, "reason": reason} for m, reason in offer.unavailable_datasets
    ]
    return mounted, unavailable


def _select(choices, remembered_name):
    for choice in choices:
        choice.selected = False
    usable = [c for c in choices if not c.reason]
    chosen = next((c for c in usable if c.name == remembered_name), None) or (usable[0] if usable else None)
    if chosen is not None:
        chosen.selected = True


def render_form(model, *, admin_note="", user_env=""):
    if model is None:
        raise NoLaunchGroup(NO_GROUP_MESSAGE)
    return _env.get_template("form.html").render(
        groups=model, sep=FIELD_SEPARATOR, admin_note=admin_note, user_env=user_env
    )


class RenderedForms:
    """The last rendered form of each server, reused while nothing it shows has changed.

    A form depends on the owner's entitlements (groups, grants, attributes: compared by value,
    so a reload of the same entitlements keeps the page and a changed grant does not), the
    catalog (the watcher keeps one object until a resource changes: compared by identity),
    the quota usage, the remembered options (choices and the user's own variables, normalized),
    the admin note and the role prefix. Any change of one of them renders again. At most `size` forms are kept (least recently used dropped).
    """

    def __init__(self, size=256):
        self.size = size
        self._forms = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _same(old, new):
        user, catalog, *rest = new
        old_user, old_catalog, *old_rest = old
        return catalog is old_catalog and (user is old_user or user == old_user) and rest == old_rest

    def get(self, key, inputs):
        with self._lock:
            entry = self._forms.get(key)
            if entry is None or not self._same(entry[0], inputs):
                return None
            self._forms.move_to_end(key)
            return entry[1]

    def put(self, key, inputs, html):
        user, catalog, usage, remembered, *rest = inputs
        frozen = (user, catalog, dict(usage or {}), dict(remembered or {}), *rest)
        with self._lock:
            self._forms[key] = (frozen, html)
            self._forms.move_to_end(key)
            while len(self._forms) > self.size:
                self._forms.popitem(last=False)

    def clear(self):
        with self._lock:
            self._forms.clear()


rendered_forms = RenderedForms()

_gc_pause = {"depth": 0, "was_enabled": False}
_gc_lock = threading.Lock()


@contextlib.contextmanager
def collection_paused():
    """No cyclic garbage collection while a big form is built and rendered (in a worker thread).

    The form model of a user in hundreds of groups is a few hundred thousand short-lived objects.
    Left alone, they survive the young collections while the page is written and set off a full
    collection of the whole hub, which holds every thread, the event loop's included, for a few
    hundred milliseconds. Paused, they are freed by reference counting when the render ends,
    before the collector ever sees them. Nested and concurrent renders share one pause.
    """
    with _gc_lock:
        if _gc_pause["depth"] == 0:
            _gc_pause["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_pause["depth"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pause["depth"] -= 1
            if _gc_pause["depth"] == 0 and _gc_pause["was_enabled"]:
                gc.enable()


def form_options(formdata):
    """Turn posted form fields into {"group", "instance_type", "image"} candidates.

    Fields of groups other than the chosen one are ignored (without JavaScript every group's
    selects are posted). Other unknown fields are passed on, so strict validation refuses them.
    """
    options = {}
    group_values = formdata.get("group") or formdata.get("profile")
    group = None
    if isinstance(group_values, list) and len(group_values) == 1 and isinstance(group_values[0], str):
        group = group_values[0]
    elif isinstance(group_values, str):
        group = group_values
    for key, value in formdata.items():
        name, sep, owner = key.partition(FIELD_SEPARATOR)
        if sep and name in ("instance_type", "image"):
            if owner == group:
                options[name] = value
            continue
        if key == "_xsrf":
            continue  # JupyterHub's own token, checked by the handler; some clients post it in the body
        if key == "profile":
            key = "group"
        options.setdefault(key, value)
    return options
