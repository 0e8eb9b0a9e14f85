"""`primehub-profiles explain` / `pod` on the scenario, and the hub's configuration file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hub_scenario import REALM, RESOURCES
from primehub_hub.cli import main
from primehub_hub.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "hub-config" / "jupyterhub_config.py"
INPUTS = ["--realm", str(REALM), "--resources", str(RESOURCES)]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def explain(capsys, name, *extra):
    code, out, err = run(capsys, "explain", "--user", name, *INPUTS, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_explain_json_for_a_user_in_two_groups(capsys):
    report = explain(capsys, "ana")
    assert report["user"] == "ana" and report["admin"] is False
    groups = {g["name"]: g for g in report["groups"]}
    assert list(groups) == ["analysts", "vision"]  # never everyone
    vision = groups["vision"]
    assert vision["displayName"] == "Vision Lab"
    assert vision["quota"] == {"cpu": 8.0, "gpu": 1, "memory": 32 * 1024**3}
    assert vision["projectQuota"] == {"cpu": None, "gpu": 2, "memory": None}
    fits = {i["name"]: i["fitsQuota"] for i in vision["instanceTypes"]}
    assert fits == {"amd-one": True, "gpu-one": True, "gpu-two": False, "small": True}
    assert [i["name"] for i in vision["images"]] == ["base", "cuda", "torch"]
    datasets = {d["name"]: d for d in vision["datasets"]}
    assert "confidential" not in datasets
    assert datasets["reports"]["writable"] is False and datasets["reports"]["mountPath"] == "/datasets/reports"
    assert datasets["handbook"]["type"] == "env" and datasets["handbook"]["mountPath"] is None
    analysts = {d["name"]: d for d in groups["analysts"]["datasets"]}
    assert analysts["reports"]["writable"] is True and "confidential" in analysts
    why = {(d["kind"], d["name"]): d["why"] for d in groups["analysts"]["decisions"]}
    assert why[("InstanceType", "ghost-type")] == "granted to analysts, but no such InstanceType exists"
    assert why[("InstanceType", "no-grant")] == "not granted to this group or to everyone"
    assert why[("InstanceType", "small")] == "granted to everyone"


@pytest.mark.parametrize(
    "name, admin, groups",
    [
        ("root", True, ["analysts"]),
        ("olga", True, ["ops", "vision"]),
        ("nobody", False, []),
        ("ivan", False, ["interns"]),
    ],
)
def test_explain_admin_and_launch_groups(capsys, name, admin, groups):
    report = explain(capsys, name)
    assert report["admin"] is admin and [g["name"] for g in report["groups"]] == groups


def test_explain_quota_zero_and_prefix(capsys):
    interns = explain(capsys, "ivan")["groups"][0]
    assert [(i["name"], i["fitsQuota"]) for i in interns["instanceTypes"]] == [("small", False)]
    assert explain(capsys, "pat", "--prefix", "ph")["groups"][0]["instanceTypes"][0]["name"] == "large"


def test_explain_text_says_why(capsys):
    code, out, _ = run(capsys, "explain", "--user", "ana", *INPUTS)
    assert code == 0
    assert "Group vision (Vision Lab)" in out
    assert "launch-group-only; granted to analysts, not to vision" in out
    assert "not enough GPU quota" in out
    code, out, _ = run(capsys, "explain", "--user", "nobody", *INPUTS)
    assert "No launch group" in out


def test_explain_bad_input_exits_2(capsys):
    code, _, err = run(capsys, "explain", "--user", "zed", *INPUTS)
    assert code == 2 and "not in the realm export" in err
    code, _, err = run(capsys, "explain", "--user", "ana")
    assert code == 2 and "--realm" in err


@pytest.fixture(autouse=True)
def _restore_kube_client_state(request):
    # the pod command configures the Kubernetes client for offline use; undo it per test
    if request.node.name.startswith("test_pod"):
        request.getfixturevalue("offline_kube")


def pod(capsys, *args):
    code, out, err = run(capsys, "pod", *INPUTS, "--json", *args)
    return code, (json.loads(out) if code == 0 else None), err


def test_pod_is_what_the_spawner_builds(capsys, monkeypatch, tmp_path):
    # the scenario's hostPath dataset lives under /data/, which the hub must allow
    (tmp_path / "settings.json").write_text('{"namespace": "primehub", "primehub": {"datasetHostPaths": ["/data/"]}}')
    monkeypatch.setenv("PRIMEHUB_SETTINGS", str(tmp_path / "settings.json"))
    code, manifest, err = pod(
        capsys, "--user", "ana", "--group", "vision", "--instance-type", "gpu-one", "--image", "torch"
    )
    assert code == 0, err
    assert manifest["kind"] == "Pod" and manifest["metadata"]["labels"]["primehub.io/group"] == "escaped-vision"
    container = manifest["spec"]["containers"][0]
    assert container["image"] == "example/torch:cuda"
    assert container["resources"]["limits"] == {"cpu": 4.0, "memory": 16 * 1024**3, "nvidia.com/gpu": 1}
    assert (
        container["args"][:2] == ["sh", "-c"] and container["args"][4] == "jupyterhub-singleuser"
    )  # the start wrapper, then the hub config's command
    assert "--MappingKernelManager.cull_idle_timeout=3600" in container["args"]  # idle kernels are culled
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TZ"] == "Asia/Taipei" and env["GROUP_NAME"] == "vision"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/home/jovyan"]["name"] == "home"  # from jupyterhub_config.py
    assert mounts["/datasets/reports"]["readOnly"] is True
    assert manifest["spec"]["nodeSelector"] == {"accelerator": "nvidia"}
    assert {"name": "project-vision", "persistentVolumeClaim": {"claimName": "project-vision"}} in manifest["spec"][
        "volumes"
    ]
    # camelCase API field names, as kubectl shows them
    assert "volumeMounts" in container and "imagePullSecrets" in manifest["spec"]


def test_pod_without_the_hub_config_uses_kubespawner_defaults(capsys):
    code, manifest, _ = pod(
        capsys, "--user", "root", "--group", "analysts", "--instance-type", "small", "--image", "lab", "--no-config"
    )
    assert code == 0
    spec = manifest["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts >= {"/datasets/sales", "/project/analysts"}
    assert "/datasets/reports" not in mounts  # a hostPath dataset needs the operator's allow-list
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "none" and env["TZ"] == "UTC"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--user", "ana", "--group", "vision", "--instance-type", "small", "--image", "cuda"], "needs a GPU"),
        (["--user", "ana", "--group", "vision", "--instance-type", "gpu-two", "--image", "torch"], "GPU quota"),
        (["--user", "ivan", "--group", "interns", "--instance-type", "small", "--image", "base"], "CPU quota"),
        (["--user", "ana", "--group", "interns", "--instance-type", "small", "--image", "base"], "not a member"),
        (
            ["--user", "bea", "--group", "broken_vol", "--instance-type", "medium", "--image", "base"],
            "shared-volume-capacity",
        ),
    ],
)
def test_pod_refusals_exit_1_with_the_users_message(capsys, args, words):
    code, _, err = pod(capsys, *args)
    assert code == 1 and words in err


def test_the_installed_console_script(tmp_path):
    script = Path(sys.executable).parent / "primehub-profiles"
    proc = subprocess.run(
        [str(script), "explain", "--user", "ana", *INPUTS, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert [g["name"] for g in json.loads(proc.stdout)["groups"]] == ["analysts", "vision"]
    assert "broken-it" in proc.stderr  # the invalid resource is named in the log


# --- settings and the hub's configuration file ----------------------------------------------------------


def test_settings_document_defaults_and_mistakes(tmp_path):
    settings = Settings.from_document(
        {"keycloak": {"url": "http://localhost:8180/"}, "singleuser": {"cmd": "start.sh"}},
        env={"PRIMEHUB_KEYCLOAK_CLIENT_SECRET": "s"},
    )
    assert (
        settings.keycloak_url == "http://localhost:8180" and settings.keycloak_internal_url == "http://localhost:8180"
    )
    assert settings.namespace == "default" and settings.realm == "primehub" and settings.client_id == "jupyterhub"
    assert settings.client_secret == "s" and settings.document["singleuser"]["cmd"] == ["start.sh"]
    assert settings.document["singleuser"]["storage"]["homeVolume"] is True  # defaults fill what is not given
    with pytest.raises(SettingsError, match="unknown setting keycloak.urll"):
        Settings.from_document({"keycloak": {"urll": "x"}})
    with pytest.raises(SettingsError, match="singleuser.cmd"):
        Settings.from_document({"singleuser": {"cmd": [1, 2]}})
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.load(str(tmp_path / "missing.json"))
    (tmp_path / "settings.json").write_text('{"extraConfigDir": "."}')
    assert Settings.load(env={"PRIMEHUB_SETTINGS": str(tmp_path / "settings.json")}).extra_config_dir == str(tmp_path)
    assert Settings.load(env={}).document["namespace"] == "default"  # no document: the defaults


def local_stack_settings(**changes):
    """The document the local stack writes (scripts/localstack/hub.py)."""
    from localstack import hub

    return hub.settings(**changes)


def load_app(monkeypatch, tmp_path, document, secret="local-dev-only-secret"):
    from jupyterhub.app import JupyterHub

    path = tmp_path / "settings.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("PRIMEHUB_SETTINGS", str(path))
    monkeypatch.setenv("PRIMEHUB_KEYCLOAK_CLIENT_SECRET", secret)
    monkeypatch.setenv("PRIMEHUB_LOCAL_ADMIN_TOKEN", "t")
    app = JupyterHub()
    app.load_config_file(str(CONFIG))
    return app


def test_the_hub_loads_the_local_stacks_settings(monkeypatch, tmp_path):
    from primehub_hub.auth import PrimeHubAuthenticator
    from primehub_hub.spawner import PrimeHubSpawner

    app = load_app(monkeypatch, tmp_path, local_stack_settings())
    assert app.authenticator_class is PrimeHubAuthenticator
    assert app.spawner_class is PrimeHubSpawner
    assert app.hub_connect_url == "http://127.0.0.1:8081"
    config = app.config
    assert config.KubeSpawner.namespace == "primehub"
    assert config.KubeSpawner.cmd == ["jupyterhub-singleuser", "--allow-root"]
    assert config.KubeSpawner.fs_gid == 100
    assert config.KubeSpawner.storage_pvc_ensure is True and config.KubeSpawner.storage_capacity == "1Gi"
    assert config.KubeSpawner.volume_mounts["home"]["mountPath"] == "/home/jovyan"
    assert config.ConfigurableHTTPProxy.should_start is True and config.JupyterHub.cleanup_servers is False
    assert [s["name"] for s in config.JupyterHub.services] == ["local-admin"]  # hub-extra-config ran
    (admin_role,) = config.JupyterHub.load_roles
    assert admin_role["services"] == ["local-admin"] and "admin:servers" in admin_role["scopes"]
    authenticator = PrimeHubAuthenticator(config=config)
    assert authenticator.authorize_url == "http://localhost:8180/realms/primehub/protocol/openid-connect/auth"
    assert authenticator.token_url == "http://127.0.0.1:8180/realms/primehub/protocol/openid-connect/token"
    assert authenticator.client_secret == "local-dev-only-secret"
    assert authenticator.public_url == "http://127.0.0.1:8000"


def test_config_passes_any_traitlet_through(monkeypatch, tmp_path):
    document = local_stack_settings(config={"PrimeHubSpawner": {"explicit_zero_requests": True}})
    app = load_app(monkeypatch, tmp_path, document)
    assert app.config.PrimeHubSpawner.explicit_zero_requests is True


def test_extra_config_files_run_last_in_name_order(monkeypatch, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "20-second.py").write_text("c.KubeSpawner.start_timeout = 2\nc.PrimeHubSpawner.role_prefix = 'late'\n")
    (extra / "10-first.py").write_text("c.KubeSpawner.start_timeout = 1\nc.KubeSpawner.cmd = ['other']\n")
    (extra / "notes.txt").write_text("c.KubeSpawner.start_timeout = 3\n")
    document = local_stack_settings(extraConfigDir="extra")  # relative to the document's folder
    document["keycloak"]["rolePrefix"] = "ph"
    app = load_app(monkeypatch, tmp_path, document)
    assert app.config.KubeSpawner.start_timeout == 2
    assert app.config.KubeSpawner.cmd == ["other"]
    assert app.config.PrimeHubSpawner.role_prefix == "late"


def test_without_a_home_volume_the_config_leaves_volumes_alone(monkeypatch, tmp_path):
    app = load_app(monkeypatch, tmp_path, local_stack_settings(singleuser={"storage": {"homeVolume": False}}))
    assert "volume_mounts" not in app.config.KubeSpawner
    assert "hub_connect_url" in app.config.JupyterHub


def test_the_config_works_from_a_copied_folder_without_installing(tmp_path):
    """As in the stock hub image: hub-config mounted at /usr/local/etc/jupyterhub/."""
    import shutil

    target = tmp_path / "jupyterhub"
    shutil.copytree(REPO / "hub-config", target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    code = (
        "from traitlets.config.loader import PyFileConfigLoader\n"
        f"c = PyFileConfigLoader('jupyterhub_config.py', {str(target)!r}).load_config()\n"
        "import primehub_hub\n"
        "print(primehub_hub.__file__)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(target / "primehub_hub" / "__init__.py")


def test_one_version_for_the_package_the_cli_and_the_chart(capsys):
    import primehub_hub

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"primehub-profiles {primehub_hub.__version__}"
    chart = yaml.safe_load((REPO / "chart" / "Chart.yaml").read_text())
    assert chart["version"] == primehub_hub.__version__
    pyproject = (REPO / "hub-config" / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "primehub_hub.__version__"' in pyproject
