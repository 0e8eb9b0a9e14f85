"""The security of user pods: the chart's defaults, carried by the settings document to the spawner.

A user pod the chart's hub builds runs as jovyan (uid 1000, group users 100) as docker-stacks images
expect, never as root, with the runtime's seccomp profile, no privilege escalation and no
capabilities: what Pod Security Admission `restricted` asks (tests/integration/test_pod_security.py
submits such pods to a real API server). Sudo (primehub.grantSudo) needs root and says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_chart_render import CHART, chart_settings, helm, render, template_minimal

from hub_scenario import make_spawner

REPO = Path(__file__).resolve().parents[2]
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "fsGroup": 100,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
LAUNCH = {"group": "analysts", "instance_type": "medium", "image": "base"}


def chart_document(*values: str) -> dict:
    return chart_settings(render("-f", str(CHART / "examples/minimal.yaml"), *values))


def spawner_from(document: dict, **kwargs):
    """A scenario spawner configured from a settings document, as jupyterhub_config.py configures the hub's."""
    from traitlets.config import Config

    from primehub_hub.settings import Settings, apply_settings

    c = Config()
    apply_settings(c, Settings.from_document(document, env={}))
    kwargs.setdefault("options_explicit", True)
    return make_spawner("ana", config=c, **kwargs)


async def launched_pod(spawner, options=LAUNCH) -> dict:
    from kubernetes_asyncio.client import ApiClient

    spawner.user_options = dict(options)
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        return client.sanitize_for_serialization(pod)


@pytest.fixture(scope="module")
def chart_defaults() -> dict:
    return chart_document()


def test_the_charts_defaults_reach_the_settings_document(chart_defaults):
    su = chart_defaults["singleuser"]
    assert su["podSecurityContext"] == RESTRICTED_POD
    assert su["containerSecurityContext"] == RESTRICTED_CONTAINER
    # the z2jh shorthands are left unset, so the contexts are the one place the user is chosen
    assert su["uid"] is None and su["fsGid"] is None


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_a_user_pod_of_the_charts_hub_is_restricted(chart_defaults):
    pod = await launched_pod(spawner_from(chart_defaults))
    assert pod["spec"]["securityContext"] == RESTRICTED_POD
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == RESTRICTED_CONTAINER
    assert not pod["spec"].get("initContainers"), "no init container runs outside these settings"
    # the start wrapper still runs: nothing in it needs root
    assert container["args"][:2] == ["sh", "-c"] and "primehub-start" in container["args"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_safe_mode_and_the_links_need_no_root(chart_defaults):
    """Safe Mode moves the home volume one folder deeper and the postStart hook makes links only in
    the home folder (fsGroup makes it the user's) and in an emptyDir of the pod's own."""
    pod = await launched_pod(spawner_from(chart_defaults), {**LAUNCH, "safe_mode": True})
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == RESTRICTED_CONTAINER
    assert {m["mountPath"] for m in container["volumeMounts"] if m["name"] == "home"} == {"/home/jovyan/user"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PRIMEHUB_SAFE_MODE"] == "true"
    assert "sudo" not in str(container["lifecycle"]) and "chown" not in str(container["lifecycle"])


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_sudo_starts_the_container_as_root_and_keeps_seccomp(chart_defaults):
    pod = await launched_pod(spawner_from(chart_document("--set", "primehub.grantSudo=true")))
    # docker-stacks' start script runs as root, gives jovyan sudo and drops to it
    assert pod["spec"]["securityContext"] == {"fsGroup": 100, "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": True,
    }
    assert {"name": "GRANT_SUDO", "value": "yes"} in container["env"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_zero_to_jupyterhubs_uid_still_wins(chart_defaults):
    pod = await launched_pod(
        spawner_from(chart_document("--set", "singleuser.uid=2000", "--set", "singleuser.fsGid=3000"))
    )
    assert pod["spec"]["securityContext"]["fsGroup"] == 100  # the pod context wins over fsGid (KubeSpawner's rule)
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"]["runAsUser"] == 2000  # the container's user wins over the pod's


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_each_launch_starts_again_from_the_configured_contexts(chart_defaults):
    """grantSudo changes the contexts per launch; a later launch without it is restricted again."""
    spawner = spawner_from(chart_defaults)
    spawner.grant_sudo = True
    assert (await launched_pod(spawner))["spec"]["containers"][0]["securityContext"]["runAsUser"] == 0
    spawner.grant_sudo = False
    assert (await launched_pod(spawner))["spec"]["containers"][0]["securityContext"] == RESTRICTED_CONTAINER


def test_a_given_context_replaces_the_default_and_snake_case_is_refused():
    from primehub_hub.settings import Settings, SettingsError

    given = {"singleuser": {"podSecurityContext": {"runAsUser": 1001}}}
    assert Settings.from_document(given, env={}).document["singleuser"]["podSecurityContext"] == {"runAsUser": 1001}
    with pytest.raises(SettingsError, match="runAsUser, not run_as_user"):
        Settings.from_document({"singleuser": {"containerSecurityContext": {"run_as_user": 0}}}, env={})
    # without the chart, the hub leaves KubeSpawner's own defaults
    assert Settings.from_document({}, env={}).document["singleuser"]["podSecurityContext"] == {}


def test_root_with_run_as_non_root_is_refused_at_install():
    refused = template_minimal("singleuser.uid=0")
    assert refused.returncode != 0 and "primehub.grantSudo" in refused.stderr
    allowed = ("--set", "singleuser.uid=0", "--set", "singleuser.podSecurityContext.runAsNonRoot=false")
    assert helm("template", "hub", str(CHART), "-f", str(CHART / "examples/minimal.yaml"), *allowed).returncode == 0


def test_sudo_overrides_leave_other_settings_alone():
    from primehub_hub.singleuser import sudo_overrides

    assert sudo_overrides(False, RESTRICTED_POD, RESTRICTED_CONTAINER) == ({}, {})
    traits, env = sudo_overrides(
        True, {"runAsUser": 1000, "sysctls": []}, {"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}}
    )
    assert traits["pod_security_context"] == {"sysctls": []}
    assert traits["container_security_context"]["capabilities"] == {"add": ["NET_RAW"]}
    assert env == {"GRANT_SUDO": "yes"}
    # a function of the operator's decides the contexts itself
    traits, _ = sudo_overrides(True, lambda spawner: {}, None)
    assert traits == {"uid": 0, "allow_privilege_escalation": True}
