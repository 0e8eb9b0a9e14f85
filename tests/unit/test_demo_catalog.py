"""The demo catalog (crds/examples) starts wherever the project runs it: the local stack and kind.

Every dataset a demo group is granted must be something those clusters have: a PVC the local stack
makes, a node folder under the allow-list both give the hub, a git checkout, or variables. A dataset
on a server nobody runs (the former `archive` on NFS) makes every server it is mounted into wait on
the mount until the start timeout.
"""

from __future__ import annotations

from pathlib import Path

import yaml

import check_catalog as cc
import realmlib as rl
from localstack import hub as local_hub

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "crds" / "examples" / "datasets.yaml"
CLAIMS = REPO / "scripts" / "localstack" / "demo-dataset-volumes.yaml"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _granted_datasets() -> set[str]:
    realm = rl.load_realm(REPO / "keycloak-realm" / "primehub-realm.json")
    return {g.name for grants in cc.group_grants(realm).values() for g in grants if g.kind == "Dataset"}


def test_every_granted_demo_dataset_is_something_the_stacks_have():
    from primehub_hub.datasets import dataset_refusal
    from primehub_hub.resources import parse_dataset

    datasets = {d["metadata"]["name"]: parse_dataset(d) for d in _docs(DATASETS)}
    claims = {d["metadata"]["name"] for d in _docs(CLAIMS) if d["kind"] == "PersistentVolumeClaim"}
    allowed = local_hub.settings()["primehub"]["datasetHostPaths"]
    granted = _granted_datasets()
    assert "archive" in granted and granted <= set(datasets)
    for name in sorted(granted):
        dataset = datasets[name]
        assert dataset.type != "nfs", f"{name}: no NFS server runs on the local stack or in kind"
        if dataset.type == "pv":
            assert f"dataset-{dataset.volume_name}" in claims, f"{name}: its PVC is not made by the local stack"
        # hostPath and git datasets are mounted by the hub with the stacks' allow-list
        assert dataset_refusal(dataset, host_path_prefixes=allowed) is None, name


def test_the_archive_dataset_is_a_read_only_volume_of_the_ml_team():
    (archive,) = [d for d in _docs(DATASETS) if d["metadata"]["name"] == "archive"]
    assert archive["spec"]["type"] == "pv" and archive["spec"]["volumeName"] == "archive"
    realm = rl.load_realm(REPO / "keycloak-realm" / "primehub-realm.json")
    holders = {g for g, grants in cc.group_grants(realm).items() if any(x.role == "ds:archive" for x in grants)}
    assert holders == {"ml-team"}
