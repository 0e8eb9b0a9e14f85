"""The synthetic platform the benchmarks run against: groups, grants and custom resources.

One generator serves the real stack (Keycloak partial import + custom resources in namespace
`bench`) and the in-process growth runs, so both measure the same shape.

Shape at scale s (case 1 is s=1): 20s groups, 200s instance types, 100s images, 500s datasets.
- every instance type and image is granted to 3 groups (so each group offers about 30 instance
  types and 15 images at any scale): platforms grow by adding teams, not by giving each team more;
- every dataset is granted to one group (25 per group); all but `SHARED_DATASETS` are
  launchGroupOnly, the rest are mounted wherever one of the user's groups grants them. The shared
  count stays fixed as the platform grows: a user in more groups would otherwise see every
  dataset of every team under every group, and the form would grow with groups x datasets by
  construction rather than by anything the hub does.
- grants go to the bench groups only: the realm's `everyone` group belongs to the shared realm and is
  left alone (its grants name resources that do not exist in namespace `bench`, so they are ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

LABEL = "bench.primehub.io/fixture"
SHARED_DATASETS = 100
GRANTS_PER_RESOURCE = 3
MiB = 1024**2

# Names of the small fixtures every case uses; all Keycloak objects carry the `bench-` prefix.
CONC_GROUP = "bench-conc"
QUOTA_GROUP = "bench-quota"
FAIL_GROUP = "bench-fail"
TINY_IT = "bench-tiny"
HUGE_IT = "bench-huge"
TINY_IMAGE = "bench-img-tiny"
TINY_MEMORY = "16M"  # 16 MiB in PrimeHub's notation
TINY_CPU = 0.01
# The tiny pods may use the tainted GPU node too: both nodes' 110-pod capacity, not one's.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Shape:
    tag: str
    groups: int
    instance_types: int
    images: int
    datasets: int

    @classmethod
    def scaled(cls, tag: str, scale: float) -> "Shape":
        return cls(tag, round(20 * scale), round(200 * scale), round(100 * scale), round(500 * scale))

    def group(self, i: int) -> str:
        return f"bench-{self.tag}-g{i:04d}"

    def it(self, i: int) -> str:
        return f"bench-{self.tag}-it-{i:05d}"

    def img(self, i: int) -> str:
        return f"bench-{self.tag}-img-{i:05d}"

    def ds(self, i: int) -> str:
        return f"bench-{self.tag}-ds-{i:05d}"

    @property
    def group_names(self) -> list[str]:
        return [self.group(i) for i in range(self.groups)]

    def _holders(self, i: int) -> list[int]:
        # spread the 3 grants of resource i over groups far apart, so offers overlap realistically
        step = max(1, self.groups // GRANTS_PER_RESOURCE)
        return sorted({(i + k * step + k) % self.groups for k in range(min(GRANTS_PER_RESOURCE, self.groups))})

    def is_shared_dataset(self, i: int) -> bool:
        every = max(1, self.datasets // SHARED_DATASETS)
        return i % every == 0 and i // every < SHARED_DATASETS

    def grants(self) -> dict[str, list[str]]:
        """Realm role names granted to each group."""
        out: dict[str, list[str]] = {g: [] for g in self.group_names}
        for i in range(self.instance_types):
            for g in self._holders(i):
                out[self.group(g)].append(f"it:{self.it(i)}")
        for i in range(self.images):
            for g in self._holders(i):
                out[self.group(g)].append(f"img:{self.img(i)}")
        for i in range(self.datasets):
            prefix = "ds:rw:" if i % 10 == 0 else "ds:"
            out[self.group(i % self.groups)].append(f"{prefix}{self.ds(i)}")
        return out

    def roles(self) -> list[str]:
        return sorted({r for roles in self.grants().values() for r in roles})

    def objects(self, namespace: str | None = None) -> list[dict]:
        return (
            [self.instance_type(i, namespace) for i in range(self.instance_types)]
            + [self.image(i, namespace) for i in range(self.images)]
            + [self.dataset(i, namespace) for i in range(self.datasets)]
        )

    def _meta(self, name: str, namespace: str | None, annotations: dict | None = None) -> dict:
        meta = {"name": name, "labels": {LABEL: self.tag}}
        if namespace:
            meta["namespace"] = namespace
        if annotations:
            meta["annotations"] = annotations
        return meta

    def instance_type(self, i: int, namespace: str | None = None) -> dict:
        spec = {
            "displayName": f"Bench {self.tag} type {i}",
            "description": f"Instance type {i} of the {self.tag} benchmark catalog.",
            # all tiny, so that any of them schedules on the local nodes
            "limits": {"cpu": round(TINY_CPU * (1 + i % 4), 2), "memory": f"{16 * (1 + i % 3)}M"},
            "tolerations": [dict(GPU_TOLERATION)],
        }
        if i % 10 == 9:
            spec["limits"]["nvidia.com/gpu"] = 1
            spec["nodeSelector"] = {"accelerator": "nvidia-tesla"}
        if i % 5 == 1:
            spec["requests"] = {"cpu": TINY_CPU, "memory": "8M"}
        return {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "InstanceType",
            "metadata": self._meta(self.it(i), namespace),
            "spec": spec,
        }

    def image(self, i: int, namespace: str | None = None) -> dict:
        kind = ("both", "cpu", "both", "both", "gpu")[i % 5]
        spec = {
            "displayName": f"Bench {self.tag} image {i}",
            "description": f"Image {i}.",
            "type": kind,
            "url": f"registry.bench.invalid/notebook:{i}",
        }
        if kind == "gpu":
            spec["urlForGpu"] = f"registry.bench.invalid/notebook-cuda:{i}"
        return {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "Image",
            "metadata": self._meta(self.img(i), namespace),
            "spec": spec,
        }

    def dataset(self, i: int, namespace: str | None = None) -> dict:
        # no `pv` datasets: their claims would have to exist for the pods to schedule
        kind = ("env", "hostPath", "nfs", "git", "hostPath")[i % 5]
        name = self.ds(i)
        spec: dict = {"displayName": f"Bench {self.tag} dataset {i}", "description": f"Dataset {i}.", "type": kind}
        if kind == "env":
            spec["variables"] = {"bucket": f"bucket-{i}", "region": "local"}
        elif kind == "hostPath":
            spec["hostPath"] = {"path": f"/srv/bench/{name}"}
        elif kind == "nfs":
            spec["nfs"] = {"server": "127.0.0.1", "path": f"/exports/{name}"}
        else:
            spec["url"] = f"https://git.bench.invalid/{name}.git"
        annotations = None if self.is_shared_dataset(i) else {"dataset.primehub.io/launchGroupOnly": "true"}
        return {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "Dataset",
            "metadata": self._meta(name, namespace, annotations),
            "spec": spec,
        }


def small_objects(namespace: str | None = None) -> list[dict]:
    """The tiny and the unschedulable instance type and one image, for cases 3 and 4."""
    meta = lambda name: {"name": name, "labels": {LABEL: "small"}, **({"namespace": namespace} if namespace else {})}  # noqa: E731
    return [
        {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "InstanceType",
            "metadata": meta(TINY_IT),
            "spec": {
                "displayName": "Bench tiny",
                "limits": {"cpu": TINY_CPU, "memory": TINY_MEMORY},
                "tolerations": [dict(GPU_TOLERATION)],
            },
        },
        # more CPU than any node has: the scheduler's verdict is final
        {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "InstanceType",
            "metadata": meta(HUGE_IT),
            "spec": {"displayName": "Bench huge", "limits": {"cpu": 64, "memory": "1G"}},
        },
        {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "Image",
            "metadata": meta(TINY_IMAGE),
            "spec": {"displayName": "Bench image", "type": "both", "url": "registry.bench.invalid/tiny:1"},
        },
    ]


def small_grants() -> dict[str, list[str]]:
    return {
        CONC_GROUP: [f"it:{TINY_IT}", f"img:{TINY_IMAGE}"],
        QUOTA_GROUP: [f"it:{TINY_IT}", f"img:{TINY_IMAGE}"],
        FAIL_GROUP: [f"it:{HUGE_IT}", f"img:{TINY_IMAGE}"],
    }


def quota_attributes(k: int) -> dict[str, list[str]]:
    """A group project quota that fits exactly k tiny servers (memory is exact; CPU sums are floats)."""
    return {"project-quota-memory": [f"{16 * k}M"]}
