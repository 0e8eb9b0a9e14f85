"""docs/behaviour.md "Dataset → pod" and "Group and user volumes"."""

import logging

import pytest

from primehub_hub.datasets import dataset_env, dataset_pieces, volume_name
from primehub_hub.entitlements import Group
from primehub_hub.errors import ConfigurationError
from primehub_hub.resources import parse_dataset
from primehub_hub.volumes import home_capacity, project_name, shared_volume, shared_volumes_for_launch


def ds(name, spec, annotations=None):
    return parse_dataset({"metadata": {"name": name, "annotations": annotations or {}}, "spec": spec})


def test_env_dataset_names_and_dropped_invalid_names(caplog):
    dataset = ds("public-data", {"type": "env", "variables": {"bucket": "b", "api-key": "k", "bad key!": "x"}})
    with caplog.at_level(logging.WARNING):
        env = dataset_env(dataset)
    assert env == {
        "PUBLIC-DATA_BUCKET": "b",
        "PUBLIC_DATA_BUCKET": "b",
        "PUBLIC-DATA_API-KEY": "k",
        "PUBLIC_DATA_API_KEY": "k",
    }
    assert "bad key!" in caplog.text and "public-data" in caplog.text


def test_pv_dataset_uses_claim_dataset_volume_name_read_only_unless_writable():
    dataset = ds("team", {"type": "pv", "volumeName": "team-data"})
    pieces = dataset_pieces(dataset, writable=False)
    assert pieces.volumes == [{"name": "dataset-team", "persistentVolumeClaim": {"claimName": "dataset-team-data", "readOnly": True}}]
    assert pieces.volume_mounts == [{"name": "dataset-team", "mountPath": "/datasets/team", "readOnly": True}]
    writable = dataset_pieces(dataset, writable=True)
    assert writable.volume_mounts[0]["readOnly"] is False
    assert writable.volumes[0]["persistentVolumeClaim"]["readOnly"] is False


def test_host_path_and_nfs_follow_the_same_mount_and_read_only_rule():
    host = dataset_pieces(ds("train", {"type": "hostPath", "hostPath": {"path": "/srv/t"}}), writable=True)
    assert host.volumes == [{"name": "dataset-train", "hostPath": {"path": "/srv/t"}}]
    assert host.volume_mounts[0] == {"name": "dataset-train", "mountPath": "/datasets/train", "readOnly": False}
    nfs = dataset_pieces(ds("arch", {"type": "nfs", "nfs": {"server": "s", "path": "/p"}}), writable=False)
    assert nfs.volumes[0]["nfs"] == {"server": "s", "path": "/p", "readOnly": True}
    assert nfs.volume_mounts[0]["readOnly"] is True


def test_git_is_read_only_from_the_git_sync_host_path_even_if_granted_rw():
    pieces = dataset_pieces(ds("repo", {"type": "git"}), writable=True, git_sync_host_root="/var/gitsync")
    assert pieces.volumes == [{"name": "dataset-repo", "hostPath": {"path": "/var/gitsync/repo"}}]
    assert pieces.volume_mounts[0]["readOnly"] is True
    custom = ds("repo", {"type": "git"}, {"dataset.primehub.io/gitSyncHostRoot": "/other/"})
    assert dataset_pieces(custom, writable=False).volumes[0]["hostPath"]["path"] == "/other/repo"


def test_mount_root_and_home_symlink():
    pieces = dataset_pieces(
        ds("scratch", {"type": "hostPath", "hostPath": {"path": "/s"}}, {"dataset.primehub.io/mountRoot": "/mnt/", "dataset.primehub.io/homeSymlink": "true"}),
        writable=False,
    )
    assert pieces.volume_mounts[0]["mountPath"] == "/mnt/scratch"
    assert pieces.home_symlinks == ["/mnt/scratch"]


def test_volume_names_stay_valid_for_long_or_dotted_names():
    assert volume_name("dataset", "abc") == "dataset-abc"
    long = volume_name("dataset", "a." + "b" * 80)
    assert len(long) <= 63 and long.startswith("dataset-")


def group(name, **attributes):
    return Group(name=name, attributes=attributes)


def test_shared_volume_naming_and_mount():
    volume = shared_volume(group("Data_Science", **{"enabled-shared-volume": "true", "shared-volume-capacity": "10G"}))
    assert volume.claim_name == "project-data-science"
    assert volume.mount_path == "/project/data-science"
    assert volume.capacity == "10Gi"
    assert volume.launch_group_only is True
    assert shared_volume(group("g", **{"enabled-shared-volume": "true", "shared-volume-capacity": "2"})).capacity == "2Gi"
    assert shared_volume(group("g", **{"enabled-shared-volume": "false"})) is None
    assert project_name("ML Team!") .startswith("ml-team")


def test_shared_volume_enabled_without_capacity_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="no shared-volume-capacity") as info:
        shared_volume(group("labs", **{"enabled-shared-volume": "true"}))
    assert info.value.status_code == 409
    with pytest.raises(ConfigurationError, match="invalid"):
        shared_volume(group("labs", **{"enabled-shared-volume": "true", "shared-volume-capacity": "big"}))


def test_launch_group_only_shared_volumes():
    a = group("a", **{"enabled-shared-volume": "true", "shared-volume-capacity": "1G"})
    b = group("b", **{"enabled-shared-volume": "true", "shared-volume-capacity": "1G", "launch-group-only": "false"})
    broken = group("broken", **{"enabled-shared-volume": "true"})
    assert [v.claim_name for v in shared_volumes_for_launch(a, [a, b, broken])] == ["project-a", "project-b"]
    assert [v.claim_name for v in shared_volumes_for_launch(b, [a, b])] == ["project-b"]
    with pytest.raises(ConfigurationError):
        shared_volumes_for_launch(broken, [a, broken])


def test_home_capacity_from_user_attribute_else_default():
    assert home_capacity({"volume-capacity": "20"}, "1Gi") == "20Gi"
    assert home_capacity({"volume-capacity": "512M"}, "1Gi") == "512Mi"
    assert home_capacity({}, "1Gi") == "1Gi"
    assert home_capacity({"volume-capacity": "lots"}, "1Gi") == "1Gi"
