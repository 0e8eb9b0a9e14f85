"""docs/behaviour.md "Dataset → pod" and "Group and user volumes"."""

import logging

import pytest

from primehub_hub.datasets import dataset_env, dataset_pieces, dataset_refusal, datasets_pieces, volume_name
from primehub_hub.entitlements import DatasetMount, Group
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


@pytest.mark.parametrize(
    "name, key",
    [
        ("jupyterhub", "api_url"),
        ("jupyterhub", "api-token"),
        ("jupyterhub", "oauth_scopes"),
        ("jpy", "api_token"),
        ("ld", "preload"),
        ("ld", "library_path"),
        ("python", "startup"),
        ("bash", "env"),
        ("node", "options"),
        ("nb", "user"),
        ("mem", "limit"),
        ("cpu", "guarantee"),
        ("nvidia", "visible_devices"),
        ("jupyter", "config_dir"),
        ("group", "name"),
        ("instance", "type"),
    ],
)
def test_env_datasets_cannot_set_the_hubs_or_the_runtimes_variables(caplog, name, key):
    dataset = ds(name, {"type": "env", "variables": {key: "https://attacker.example"}})
    with caplog.at_level(logging.WARNING):
        env = dataset_env(dataset)
    assert env == {}
    assert f"Dataset {name}: dropping variable {key!r}" in caplog.text and "reserved" in caplog.text
    # a dataset whose name merely contains one keeps its variables
    assert dataset_env(ds("x" + name, {"type": "env", "variables": {key: "v"}}))


def test_pv_dataset_uses_claim_dataset_volume_name_read_only_unless_writable():
    dataset = ds("team", {"type": "pv", "volumeName": "team-data"})
    pieces = dataset_pieces(dataset, writable=False)
    assert pieces.volumes == [
        {"name": "dataset-team", "persistentVolumeClaim": {"claimName": "dataset-team-data", "readOnly": True}}
    ]
    assert pieces.volume_mounts == [{"name": "dataset-team", "mountPath": "/datasets/team", "readOnly": True}]
    writable = dataset_pieces(dataset, writable=True)
    assert writable.volume_mounts[0]["readOnly"] is False
    assert writable.volumes[0]["persistentVolumeClaim"]["readOnly"] is False


def test_host_path_and_nfs_follow_the_same_mount_and_read_only_rule():
    host = dataset_pieces(ds("train", {"type": "hostPath", "hostPath": {"path": "/srv/t"}}), writable=True)
    assert host.volumes == [{"name": "dataset-train", "hostPath": {"path": "/srv/t", "type": "Directory"}}]
    assert host.volume_mounts[0] == {"name": "dataset-train", "mountPath": "/datasets/train", "readOnly": False}
    nfs = dataset_pieces(ds("arch", {"type": "nfs", "nfs": {"server": "s", "path": "/p"}}), writable=False)
    assert nfs.volumes[0]["nfs"] == {"server": "s", "path": "/p", "readOnly": True}
    assert nfs.volume_mounts[0]["readOnly"] is True


def test_git_is_read_only_from_the_git_sync_host_path_even_if_granted_rw():
    pieces = dataset_pieces(ds("repo", {"type": "git"}), writable=True, git_sync_host_root="/var/gitsync")
    assert pieces.volumes == [{"name": "dataset-repo", "hostPath": {"path": "/var/gitsync/repo", "type": "Directory"}}]
    assert pieces.volume_mounts[0]["readOnly"] is True
    custom = ds("repo", {"type": "git"}, {"dataset.primehub.io/gitSyncHostRoot": "/other/"})
    assert dataset_pieces(custom, writable=False).volumes[0]["hostPath"]["path"] == "/other/repo"


def test_mount_root_and_home_symlink():
    pieces = dataset_pieces(
        ds(
            "scratch",
            {"type": "hostPath", "hostPath": {"path": "/s"}},
            {"dataset.primehub.io/mountRoot": "/mnt/", "dataset.primehub.io/homeSymlink": "true"},
        ),
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
    assert (
        shared_volume(group("g", **{"enabled-shared-volume": "true", "shared-volume-capacity": "2"})).capacity == "2Gi"
    )
    assert shared_volume(group("g", **{"enabled-shared-volume": "false"})) is None
    assert project_name("ML Team!").startswith("ml-team")


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


def test_a_pv_dataset_mounts_the_literal_claim_even_with_dots_or_a_long_name():
    for volume in ("team.data", "v" * 200):
        pieces = dataset_pieces(ds("team", {"type": "pv", "volumeName": volume}), writable=False)
        assert pieces.volumes[0]["persistentVolumeClaim"]["claimName"] == f"dataset-{volume}"


@pytest.mark.parametrize("volume", ["Team_Data", "v" * 246, "x-", "a..b"])
def test_a_pv_dataset_whose_claim_name_is_impossible_is_refused_naming_it(volume):
    from primehub_hub.resources import InvalidResource

    with pytest.raises(InvalidResource, match="Dataset team: spec volumeName"):
        ds("team", {"type": "pv", "volumeName": volume})


# --- catalog writers are not node administrators -------------------------------------------------

ALLOWED = ["/srv/datasets/"]


def host_dataset(path, mount_root="/datasets/", type_="hostPath", git_root=""):
    # built directly: parse_dataset would refuse a relative path before the hub's rule sees it
    from primehub_hub.resources import Dataset

    return Dataset(name="node", type=type_, host_path=path, mount_root=mount_root, git_sync_host_root=git_root)


def mounted(dataset, **settings):
    from types import SimpleNamespace

    return datasets_pieces([SimpleNamespace(dataset=dataset, writable=False)], **settings)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/var/run/containerd/containerd.sock",
        "/var/lib/kubelet",
        "/srv/datasets/../../etc",
        "/srv/datasets-other/x",
        "/srv/datasets/./x",
        "srv/datasets/x",
    ],
)
def test_host_paths_outside_the_allow_list_are_left_out_naming_the_dataset(caplog, path):
    with caplog.at_level(logging.WARNING):
        pieces = mounted(host_dataset(path), host_path_prefixes=ALLOWED)
    assert pieces.volumes == [] and pieces.volume_mounts == []
    assert "Dataset node is not mounted: host path" in caplog.text


def test_allowed_host_paths_are_mounted_as_directories_and_nothing_is_allowed_by_default():
    pieces = mounted(host_dataset("/srv/datasets/train"), host_path_prefixes=ALLOWED)
    assert pieces.volumes == [
        {"name": "dataset-node", "hostPath": {"path": "/srv/datasets/train", "type": "Directory"}}
    ]
    assert mounted(host_dataset("/srv/datasets/train")).volumes == []
    assert dataset_refusal(host_dataset("/srv/datasets/train")) == (
        "host path '/srv/datasets/train' is not under an allowed host path (none are allowed)"
    )


@pytest.mark.parametrize("root", ["/opt/conda/", "/home/jovyan/", "/usr/", "/datasets/../opt/", "/", "/project/"])
def test_mount_roots_outside_the_safe_places_are_refused(root):
    dataset = ds("scratch", {"type": "pv", "volumeName": "scratch"}, {"dataset.primehub.io/mountRoot": root})
    assert "mount root" in dataset_refusal(dataset)
    assert mounted(dataset).volumes == []


def test_git_sync_roots_are_the_configured_one_or_under_the_allow_list():
    def git(root):
        return ds(
            "repo", {"type": "git", "url": "https://x"}, {"dataset.primehub.io/gitSyncHostRoot": root} if root else None
        )

    assert dataset_refusal(git(None)) is None
    assert dataset_refusal(git("/var/gitsync/"), git_sync_host_root="/var/gitsync") is None
    assert "git-sync host root '/'" in dataset_refusal(git("/"))
    assert "git-sync host root" in dataset_refusal(git("/home/dataset/../../etc/"))
    assert dataset_refusal(git("/srv/datasets/git/"), host_path_prefixes=ALLOWED) is None


def test_the_host_path_allow_list_is_a_setting():
    from traitlets.config import Config

    from primehub_hub.settings import Settings, SettingsError, apply_settings

    def applied(document):
        c = Config()
        apply_settings(c, Settings.from_document(document, env={}))
        return c.PrimeHubSpawner.dataset_host_path_prefixes

    assert applied({}) == []
    assert applied({"primehub": {"datasetHostPaths": ["/srv/datasets/", "/data/"]}}) == ["/srv/datasets/", "/data/"]
    with pytest.raises(SettingsError, match="datasetHostPaths must be a list of absolute paths"):
        Settings.from_document({"primehub": {"datasetHostPaths": "/srv/datasets/"}}, env={})


def test_two_groups_mapping_to_one_project_volume_are_refused_naming_both():
    shared = {"enabled-shared-volume": "true", "shared-volume-capacity": "1G", "launch-group-only": "false"}
    upper = Group("ML_Team", attributes=shared, id="g-1", path="/ML_Team")
    lower = Group("ml-team", attributes=shared, id="g-2", path="/ml-team")
    with pytest.raises(
        ConfigurationError, match="'ml-team' and 'ML_Team' both map to the project volume project-ml-team"
    ):
        shared_volumes_for_launch(upper, [upper, lower])


def test_a_git_datasets_folder_is_mounted_only_under_gitsync_or_an_allowed_mount_root():
    """The checkout folder of a git dataset lands at <gitSyncRoot><name> in the container: a Dataset
    writer may not point that over the image's own files."""
    plain = ds("repo", {"type": "git", "url": "https://x/y.git"})
    assert dataset_refusal(plain) is None  # /gitsync/, the default
    moved = ds("repo", {"type": "git", "url": "https://x/y.git"}, {"dataset.primehub.io/gitSyncRoot": "/mnt/git/"})
    assert dataset_refusal(moved) is None
    over_conda = ds(
        "repo", {"type": "git", "url": "https://x/y.git"}, {"dataset.primehub.io/gitSyncRoot": "/opt/conda/"}
    )
    assert "git-sync root '/opt/conda/'" in dataset_refusal(over_conda)
    assert datasets_pieces([DatasetMount(over_conda, False, ("g",))]).volumes == []


def test_dataset_and_user_variables_share_one_reserved_list():
    """One list (datasets.py) for both: what a dataset may not set, a user may not set either."""
    from primehub_hub.userenv import reserved_reason

    for name in (
        "GRANT_SUDO",
        "LD_PRELOAD",
        "JUPYTER_CONFIG_DIR",
        "CONDA_PREFIX",
        "KUBERNETES_SERVICE_HOST",
        "BASH_ENV",
    ):
        assert reserved_reason(name), name
    env = dataset_env(ds("grant", {"type": "env", "variables": {"sudo": "yes", "token": "t"}}))
    assert env == {"GRANT_TOKEN": "t"}
