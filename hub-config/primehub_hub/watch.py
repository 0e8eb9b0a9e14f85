"""Change notifications from KubeSpawner's reflectors.

KubeSpawner's `ResourceReflector` keeps a dict of watched objects up to date but tells nobody
when it changes. Readers then either poll it or copy and compare it on every read, which costs
what the whole namespace holds. `notifying(ReflectorClass)` returns a subclass whose `resources`
dict counts its changes (`version`) and calls listeners with the changed key, so a reader can
keep a result until the version moves and a waiter can wake on the change itself. Objects that
name another (events: `involvedObject.name`) are indexed by that name, so a reader wanting one
pod's events reads those only (`involving(name)`), not every event of the namespace.

The reflector writes its dict in two ways only: a relist assigns a new dict
(`_list_and_update`), and each watch event sets or pops one key. Both are caught here.

KubeSpawner's reflector ends its watch every `timeout_seconds` (10 s) and lists the whole
namespace again before the next one. A list of a thousand pods, or of every event they made, is
parsed on the hub's event loop: with a thousand servers that stalled the hub for most of a second
every ten seconds. A watch started from the last resourceVersion the reflector saw gets every
change after it (Kubernetes keeps a window of recent changes for this; client-go resumes its
watches the same way), so here a watch that simply ended resumes from where it stopped, and the
whole list is read again only every `relist_seconds` as a safety net, and after any error (the
reflector passes version "0" then: a watch refused with 410 Gone, or a dropped connection).
"""

import time

from traitlets import HasTraits, Int

_classes = {}


class _WatchedDict(dict):
    """The reflector's resources; every write is reported to `changed(key)`."""

    __slots__ = ("_changed",)

    def __init__(self, data, changed):
        super().__init__(data)
        self._changed = changed

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._changed(key)

    def pop(self, key, *default):
        present = key in self
        value = super().pop(key, *default)
        if present:  # a resumed watch may deliver a deletion again: nothing changed then
            self._changed(key)
        return value

    def __delitem__(self, key):
        super().__delitem__(key)
        self._changed(key)


class _ChangeNotifying(HasTraits):
    """Mixed in before a ResourceReflector class: a change counter, listeners, resumed watches."""

    relist_seconds = Int(
        60,
        config=True,
        help="""How often the whole list is read again although the watch resumed without error
        (a safety net for a change a watch failed to deliver; it heals within this). Kept below
        the API server's window of recent changes (about 75 s by default), so a resumed watch is
        normally not refused as too old; if it is (410 Gone), KubeSpawner lists again at once.
        0: relist at every watch restart, as KubeSpawner does.""",
    )

    def __init__(self, *args, **kwargs):
        self.version = 0
        self.relists = 0  # full lists read (the benchmarks report them)
        self._listed_at = None  # time.monotonic() of the last full list
        self._listeners = set()
        self._listeners_about = {}  # object name -> listeners of that object and what involves it
        # involved object's name -> keys of the objects naming it, in the order they were indexed
        # (a dict for its order: readers sort by timestamp, and ties keep a stable order)
        self._involving = {}
        self._involved_of = {}  # key -> the name it is indexed under
        super().__init__(*args, **kwargs)
        self.resources = _WatchedDict(self.resources, self._changed)
        for key in list(self.resources):
            self._index(key)

    def involving(self, name):
        """The stored objects whose `involvedObject.name` is `name` (e.g. one pod's events)."""
        resources = self.resources
        return [resources[key] for key in list(self._involving.get(name, ())) if key in resources]

    def _index(self, key):
        obj = self.resources.get(key)
        name = ((obj or {}).get("involvedObject") or {}).get("name")
        old = self._involved_of.get(key)
        if old == name:
            return
        if old is not None:
            keys = self._involving.get(old)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._involving[old]
            del self._involved_of[key]
        if name is not None:
            self._involving.setdefault(name, {})[key] = None
            self._involved_of[key] = name

    def add_listener(self, callback, about=None):
        """Call `callback(key)` after every change of the object stored under `key`; with `about`,
        only for the object of that name and those involving it (a hundred spawns each waiting
        for their own pod then cost one call per change, not a hundred)."""
        if about is None:
            self._listeners.add(callback)
        else:
            self._listeners_about.setdefault(about, set()).add(callback)

    def remove_listener(self, callback, about=None):
        if about is None:
            self._listeners.discard(callback)
            return
        listeners = self._listeners_about.get(about)
        if listeners is not None:
            listeners.discard(callback)
            if not listeners:
                del self._listeners_about[about]

    def _changed(self, key):
        self.version += 1
        before = self._involved_of.get(key)
        self._index(key)
        callbacks = list(self._listeners)
        if self._listeners_about:
            # the object's own name (a pod: namespace/name) and the name it involves, before and after
            names = {key.rpartition("/")[2], before, self._involved_of.get(key)}
            for name in names - {None}:
                callbacks += self._listeners_about.get(name, ())
        for callback in callbacks:
            try:
                callback(key)
            except Exception:
                self.log.exception("A listener of the %s reflector failed", self.kind)

    async def _list_and_update(self, resource_version=None):
        # KubeSpawner passes the last resourceVersion its watch saw ("0" after an error, None at
        # the first list); returning it starts the next watch there, without a list.
        if (
            resource_version not in (None, "0")
            and self._listed_at is not None
            and time.monotonic() - self._listed_at < self.relist_seconds
        ):
            return resource_version
        self._listed_at = time.monotonic()
        self.relists += 1
        before = self.resources
        result = await super()._list_and_update(resource_version)
        listed = self.resources
        # No await between the relist's assignment and this wrap: no watch event is missed.
        self.resources = _WatchedDict(listed, self._changed)
        # A relist (every watch restart) reports only what really changed, so readers that
        # keep results per version are not made to start over by a periodic relist.
        for key, obj in listed.items():
            if key not in before or not _same(before[key], obj):
                self._changed(key)
        for key in [k for k in before if k not in listed]:
            self._changed(key)
        return result


def _same(old, new):
    old_version = ((old or {}).get("metadata") or {}).get("resourceVersion")
    new_version = ((new or {}).get("metadata") or {}).get("resourceVersion")
    if old_version is not None and new_version is not None:
        return old_version == new_version
    return old == new


def notifying(reflector_class):
    """The change-notifying subclass of a ResourceReflector class (made once per class)."""
    if issubclass(reflector_class, _ChangeNotifying):
        return reflector_class
    cls = _classes.get(reflector_class)
    if cls is None:
        cls = _classes[reflector_class] = type(
            f"Notifying{reflector_class.__name__}", (_ChangeNotifying, reflector_class), {}
        )
    return cls
