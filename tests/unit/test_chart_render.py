"""The Helm chart in chart/, rendered by the real helm, without a cluster.

What an operator relies on without reading the templates: the chart lints and renders for every
example, secrets never land in a ConfigMap, the hub's Role is least-privilege, every pod is locked
down, the repository's hub-config/ is what the hub runs, a typo in values fails, and the settings the
chart hands the hub really configure JupyterHub the way the NetworkPolicies assume.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from localstack import common

REPO = Path(__file__).resolve().parents[2]
# Another copy of the chart (a packaged or vendored one) can be put under test with PRIMEHUB_CHART_DIR.
CHART = Path(os.environ.get("PRIMEHUB_CHART_DIR", REPO / "chart"))
# The checkout the chart's relative symlinks point into (hub-config/, crds/).
CHART_REPO = CHART.resolve().parent
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
NAMESPACE = "chart-unit"


def helm_bin() -> str:
    """helm from $HELM, else the one `make tools` builds; a missing helm fails the test, never skips it."""
    path = common.helm_path()
    if not path.is_file():
        pytest.fail(f"helm is missing ({path}): run `make tools` (or set HELM to a helm 3 binary)", pytrace=False)
    return str(path)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([helm_bin(), *args], text=True, capture_output=True, timeout=120)
    if check and proc.returncode:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template_minimal(*sets: str) -> subprocess.CompletedProcess:
    """`helm template` of the minimal example with these `--set` values, for the settings the chart
    must refuse: the caller checks the exit status and the message on stderr."""
    return helm(
        "template",
        "hub",
        str(CHART),
        "-f",
        str(CHART / "examples/minimal.yaml"),
        *[arg for value in sets for arg in ("--set", value)],
        check=False,
    )


def render(*args: str, chart: Path = CHART) -> list[dict]:
    out = helm("template", "hub", str(chart), "--namespace", NAMESPACE, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, got {len(found)}"
    return found[0]


def secret_data(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def pod_specs(docs: list[dict]):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def container(docs: list[dict], deployment: str, name: str) -> dict:
    spec = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    """Every example, rendered once."""
    assert EXAMPLES, f"no values files in {CHART / 'examples'}"
    return {p.name: render("-f", str(p)) for p in EXAMPLES}


@pytest.fixture(scope="module")
def minimal(rendered) -> list[dict]:
    return rendered["minimal.yaml"]


# --- lint and render --------------------------------------------------------------------------------


def test_helm_lint_passes_with_defaults_and_every_example():
    # Defaults alone lint (helm reports the missing Keycloak URL as INFO, not as a failure).
    helm("lint", str(CHART))
    for example in EXAMPLES:
        helm("lint", "--strict", str(CHART), "-f", str(example), "--namespace", NAMESPACE)


def test_every_example_renders_the_core_objects(rendered):
    for name, docs in rendered.items():
        kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
        for wanted in [
            ("Deployment", "hub"),
            ("Service", "hub"),
            ("Deployment", "proxy"),
            ("Service", "proxy-api"),
            ("Service", "proxy-public"),
            ("ConfigMap", "hub-config"),
            ("ServiceAccount", "hub"),
            ("Role", "hub"),
            ("RoleBinding", "hub"),
        ]:
            assert wanted in kinds, f"{name}: {wanted} not rendered"
        assert one(docs, "Service", "proxy-api")["spec"]["type"] == "ClusterIP"
        for d in docs:
            assert d["metadata"].get("namespace") in (None, NAMESPACE), f"{name}: {d['kind']} in another namespace"


def test_missing_keycloak_settings_fail_with_the_fix():
    proc = helm("template", "hub", str(CHART), check=False)
    assert proc.returncode != 0 and "keycloak.url is required" in proc.stderr, proc.stderr
    proc = helm("template", "hub", str(CHART), "--set", "keycloak.url=https://id.example.com", check=False)
    assert proc.returncode != 0 and "keycloak.existingSecret" in proc.stderr, proc.stderr
    proc = template_minimal("hub.db.type=postgres")
    assert proc.returncode != 0 and "hub.db.url is required" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "setting",
    [
        "hub.typo=1",
        "typo=1",
        "keycloak.clientSecrte=x",
        "cull.timout=5",
        "singleuser.storage.capcity=1Gi",
        "hub.db.type=sqlite",
    ],
)
def test_schema_rejects_unknown_keys_and_bad_values(setting):
    proc = template_minimal(setting)
    assert proc.returncode != 0, f"--set {setting} was accepted"
    assert "schema" in proc.stderr.lower(), proc.stderr


def test_crds_come_from_the_repository():
    for name in ("instancetypes", "images", "datasets"):
        link = CHART / "crds" / f"{name}.yaml"
        assert link.is_symlink() and os.readlink(link) == f"../../crds/{name}.yaml", link
    out = helm("template", "hub", str(CHART), "-f", str(CHART / "examples/minimal.yaml"), "--include-crds").stdout
    crds = {d["metadata"]["name"] for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"}
    # Only the three CRDs: crds/examples/ (the demo catalog) must not be installed as CRDs.
    assert crds == {"instancetypes.primehub.io", "images.primehub.io", "datasets.primehub.io"}


# --- secrets ----------------------------------------------------------------------------------------


def test_secrets_never_appear_in_a_configmap(rendered):
    for name, docs in rendered.items():
        values = yaml.safe_load((CHART / "examples" / name).read_text())
        secrets = {
            v
            for s in by_kind(docs, "Secret")
            if s["metadata"]["name"] != "hub-extra-config"
            for v in secret_data(s).values()
        }
        for explicit in (
            values.get("keycloak", {}).get("clientSecret"),
            values.get("hub", {}).get("db", {}).get("password"),
        ):
            if explicit:
                secrets.add(explicit)
        configmaps = json.dumps(by_kind(docs, "ConfigMap"))
        for secret in secrets:
            assert secret not in configmaps, f"{name}: a secret value is in a ConfigMap"
        hub = container(docs, "hub", "hub")
        plain = json.dumps([e for e in hub["env"] if "value" in e])
        for secret in secrets:
            assert secret not in plain, f"{name}: a secret value is a plain env value of the hub"


def test_secret_env_comes_from_secret_key_refs_that_exist(rendered):
    for name, docs in rendered.items():
        env = env_of(container(docs, "hub", "hub"))
        secrets = {s["metadata"]["name"]: secret_data(s) for s in by_kind(docs, "Secret")}
        values = yaml.safe_load((CHART / "examples" / name).read_text())
        existing = {values.get("hub", {}).get("existingSecret"), values.get("keycloak", {}).get("existingSecret")}
        for var in (
            "PRIMEHUB_KEYCLOAK_CLIENT_SECRET",
            "JPY_COOKIE_SECRET",
            "JUPYTERHUB_CRYPT_KEY",
            "CONFIGPROXY_AUTH_TOKEN",
        ):
            ref = env[var]["valueFrom"]["secretKeyRef"]
            if ref["name"] in existing:
                continue
            assert ref["key"] in secrets[ref["name"]], f"{name}: {var} points at a missing key {ref}"
        if values.get("hub", {}).get("db", {}).get("password"):
            assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "db-password"
    minimal_secret = secret_data(one(rendered["minimal.yaml"], "Secret", "hub-keycloak"))
    assert minimal_secret == {"client-secret": "change-me-minimal-client-secret"}


def test_generated_secrets_are_32_random_bytes_in_hex(minimal):
    data = secret_data(one(minimal, "Secret", "hub"))
    for key in ("cookie-secret", "crypt-key", "proxy-token"):
        assert re.fullmatch(r"[0-9a-f]{64}", data[key]), key
    assert len({data["cookie-secret"], data["crypt-key"], data["proxy-token"]}) == 3


def test_explicit_secrets_are_used_and_existing_secret_replaces_the_chart_secret(rendered):
    key = "ab" * 32
    docs = render(
        "-f", str(CHART / "examples/minimal.yaml"), "--set", f"hub.cookieSecret={key}", "--set", "proxy.secretToken=tok"
    )
    data = secret_data(one(docs, "Secret", "hub"))
    assert data["cookie-secret"] == key and data["proxy-token"] == "tok"
    docs = rendered["existing-secret.yaml"]
    assert not [s for s in by_kind(docs, "Secret") if s["metadata"]["name"] in ("hub", "hub-keycloak")]
    env = env_of(container(docs, "hub", "hub"))
    assert env["JPY_COOKIE_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "hub-secrets", "key": "cookie-secret"}
    assert env["PRIMEHUB_KEYCLOAK_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "keycloak-jupyterhub",
        "key": "secret",
    }
    proc = helm(
        "template",
        "hub",
        str(CHART),
        "-f",
        str(CHART / "examples/existing-secret.yaml"),
        "--set",
        "hub.cookieSecret=" + key,
        check=False,
    )
    assert proc.returncode != 0 and "hub.existingSecret" in proc.stderr


# --- RBAC -------------------------------------------------------------------------------------------


def test_role_is_namespaced_least_privilege(minimal):
    assert not by_kind(minimal, "ClusterRole") and not by_kind(minimal, "ClusterRoleBinding")
    rules = one(minimal, "Role", "hub")["rules"]
    granted = {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    assert not any(r.startswith("secrets") for _, r in granted), "the hub must not read Secrets"
    assert granted[("", "pods")] == {"get", "list", "watch", "create", "delete"}
    assert granted[("", "persistentvolumeclaims")] == {"get", "list", "watch", "create", "delete", "patch"}
    assert granted[("", "events")] == {"get", "list", "watch"}
    for crd in ("instancetypes", "images", "datasets"):
        assert granted[("primehub.io", crd)] == {"get", "list", "watch"}
    binding = one(minimal, "RoleBinding", "hub")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hub"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}]
    assert one(minimal, "Deployment", "hub")["spec"]["template"]["spec"]["serviceAccountName"] == "hub"


# --- pods -------------------------------------------------------------------------------------------


def test_every_pod_is_locked_down(rendered):
    for name, docs in rendered.items():
        for deployment, spec in pod_specs(docs):
            pod = spec.get("securityContext", {})
            assert pod.get("runAsNonRoot") is True, (name, deployment)
            assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", (name, deployment)
            for c in spec["containers"]:
                sc = c.get("securityContext", {})
                where = (name, deployment, c["name"])
                assert sc.get("allowPrivilegeEscalation") is False, where
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
                assert sc.get("readOnlyRootFilesystem") is True, where
                assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, where
                assert c.get("resources", {}).get("requests"), where
        assert one(docs, "Deployment", "hub")["spec"]["strategy"] == {"type": "Recreate"}
        assert one(docs, "Deployment", "hub")["spec"]["replicas"] == 1
        assert container(docs, "hub", "hub")["securityContext"]["runAsUser"] == 1000
        proxy_spec = one(docs, "Deployment", "proxy")["spec"]["template"]["spec"]
        assert proxy_spec["automountServiceAccountToken"] is False


def test_hub_runs_the_pinned_stock_image_with_the_repository_config(minimal):
    hub = container(minimal, "hub", "hub")
    assert hub["image"] == "quay.io/jupyterhub/k8s-hub:4.4.0"
    pins = (REPO / "requirements-hub.txt").read_text()
    assert "jupyterhub==5.5.0" in pins and "k8s-hub:4.4.0" in pins
    assert hub["args"][:3] == ["jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"]
    mounts = {m["mountPath"]: m for m in hub["volumeMounts"]}
    assert mounts["/usr/local/etc/jupyterhub"]["name"] == "config"
    assert container(minimal, "proxy", "chp")["image"].startswith("quay.io/jupyterhub/configurable-http-proxy:")


def test_chart_image_app_version_and_requirements_hub_name_the_same_release():
    # The suite runs requirements-hub.txt; operators run hub.image. They must be the same z2jh release.
    tag = yaml.safe_load((CHART / "values.yaml").read_text())["hub"]["image"]["tag"]
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    pins = (CHART_REPO / "requirements-hub.txt").read_text()
    assert f"k8s-hub:{tag}" in pins and f"tag {tag}" in pins
    assert re.search(rf"^jupyterhub=={re.escape(app_version)}$", pins, re.M)


def test_hub_config_files_of_the_repository_are_in_the_configmap(minimal):
    source = CHART / "files" / "hub-config"
    assert source.is_symlink() and os.readlink(source) == "../../hub-config"
    hub_config = CHART_REPO / "hub-config"
    files = sorted(
        p
        for p in (hub_config / "primehub_hub").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    assert (hub_config / "jupyterhub_config.py").is_file(), "hub-config/jupyterhub_config.py is missing"
    assert [p for p in files if p.suffix == ".py"], "hub-config/primehub_hub/ has no Python files"
    data = one(minimal, "ConfigMap", "hub-config")["data"]
    assert data["jupyterhub_config.py"] == (hub_config / "jupyterhub_config.py").read_text()
    spec = one(minimal, "Deployment", "hub")["spec"]["template"]["spec"]
    items = {
        i["key"]: i["path"] for i in next(v for v in spec["volumes"] if v["name"] == "config")["configMap"]["items"]
    }
    assert items["jupyterhub_config.py"] == "jupyterhub_config.py"
    for path in files:
        rel = path.relative_to(hub_config).as_posix()
        key = rel.replace("/", "__")
        assert data.get(key) == path.read_text(), f"{rel} is not in the hub-config ConfigMap"
        assert items.get(key) == rel, f"{rel} is not mounted at its place"
    assert not any(k.endswith(".pyc") for k in data)


def test_packaged_chart_is_self_contained(tmp_path, minimal):
    """`helm package` resolves the symlinks, so the .tgz installs without the repository."""
    helm("package", str(CHART), "--destination", str(tmp_path))
    (tgz,) = tmp_path.glob("*.tgz")
    docs = render("-f", str(CHART / "examples/minimal.yaml"), chart=tgz)
    assert one(docs, "ConfigMap", "hub-config")["data"] == one(minimal, "ConfigMap", "hub-config")["data"]


def test_copied_chart_folder_resolves_the_relative_symlinks(tmp_path, minimal):
    """A fresh clone has the same relative links: copy the three folders and render from there."""
    for name in ("chart", "hub-config", "crds"):
        shutil.copytree(
            CHART_REPO / name,
            tmp_path / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
    docs = render("-f", str(tmp_path / "chart/examples/minimal.yaml"), chart=tmp_path / "chart")
    assert one(docs, "ConfigMap", "hub-config")["data"] == one(minimal, "ConfigMap", "hub-config")["data"]


def test_the_hub_gets_settings_from_one_document_and_only_secrets_from_the_environment(rendered):
    """docs/architecture.md names the hub's environment; everything else is in the settings document."""
    contract = re.findall(r"^\| `([A-Z_]+)` \| (secret|where)", (REPO / "docs/architecture.md").read_text(), re.M)
    assert ("PRIMEHUB_SETTINGS", "where") in contract and ("PRIMEHUB_KEYCLOAK_CLIENT_SECRET", "secret") in contract
    runtime = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
    for name, docs in rendered.items():
        env = env_of(container(docs, "hub", "hub"))
        extra = set(yaml.safe_load((CHART / "examples" / name).read_text()).get("hub", {}).get("extraEnv") or {})
        for var, kind in contract:
            if var != "PGPASSWORD":
                assert var in env, f"{name}: the chart does not set {var}"
            if kind == "secret" and var in env:
                assert "secretKeyRef" in env[var]["valueFrom"], f"{name}: {var} is not from a Secret"
        plain = {var for var, e in env.items() if "value" in e} - runtime - extra
        assert plain == {"PRIMEHUB_SETTINGS"}, f"{name}: settings outside the document: {plain}"
    settings = chart_settings(rendered["local-stack.yaml"])
    assert settings["keycloak"]["url"] == "http://127.0.0.1:8180"
    assert settings["keycloak"]["internalUrl"] == "http://127.0.0.1:8180"
    assert settings["publicUrl"] == "http://127.0.0.1:8000"
    assert settings["singleuser"]["cmd"] == ["jupyterhub-singleuser"]
    assert settings["namespace"] == NAMESPACE
    # The public address follows the first ingress host, https when TLS covers it.
    assert chart_settings(rendered["ingress.yaml"])["publicUrl"] == "https://hub.example.com"


def test_database_types(rendered, minimal):
    assert one(minimal, "PersistentVolumeClaim", "hub-db-dir")["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "--upgrade-db" in container(minimal, "hub", "hub")["args"]
    pg = rendered["postgres.yaml"]
    assert not by_kind(pg, "PersistentVolumeClaim")
    assert secret_data(one(pg, "Secret", "hub"))["db-password"] == "change-me-db-password"
    assert chart_settings(pg)["hub"]["dbUrl"] == "postgresql://jupyterhub@postgres.databases.svc:5432/jupyterhub"
    assert chart_settings(rendered["local-stack.yaml"])["hub"]["dbUrl"] == "sqlite://"


# --- network ----------------------------------------------------------------------------------------


def test_network_policies(minimal, rendered):
    su = one(minimal, "NetworkPolicy", "singleuser")["spec"]
    # Reachable only from pods the chart labels as proxy or hub.
    assert [r["from"] for r in su["ingress"]] == [
        [{"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-singleuser": "true"}}}]
    ]
    for deployment in ("hub", "proxy"):
        labels = one(minimal, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
        assert labels["hub.jupyter.org/network-access-singleuser"] == "true"
    egress = json.dumps(su["egress"])
    assert '"port": 53' in egress and '"port": 443' in egress and "169.254.169.254/32" in egress
    hub_np = one(minimal, "NetworkPolicy", "hub")["spec"]
    assert hub_np["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}
    ]
    # Keycloak peers narrow the Keycloak rule; both its addresses' ports are open.
    es = one(rendered["existing-secret.yaml"], "NetworkPolicy", "hub")["spec"]["egress"]
    kc = [
        r
        for r in es
        if r.get("to")
        and "namespaceSelector" in r["to"][0]
        and r["to"][0]["namespaceSelector"]["matchLabels"].get("kubernetes.io/metadata.name") == "keycloak"
    ]
    assert kc and sorted(p["port"] for p in kc[0]["ports"]) == [443, 8080]
    assert not by_kind(rendered["local-stack.yaml"], "NetworkPolicy")


METADATA = ipaddress.ip_address("169.254.169.254")
DNS_ONLY = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


def reaches(peer: dict, address) -> bool:
    """True when a NetworkPolicy peer lets traffic to `address` through (pod and namespace selectors
    match cluster pods, never the metadata server)."""
    block = peer.get("ipBlock")
    if not block:
        return False
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])


def egress_rules():
    """(where, policy, rule) for every egress rule of every policy: each example, plus the defaults with a
    plain-http Keycloak (the port the metadata server listens on) and every egress switch turned on."""
    variants = {name: render("-f", str(p)) for p in EXAMPLES for name in [p.name]}
    variants["plain-http-keycloak, every switch on"] = render(
        "-f",
        str(CHART / "examples/minimal.yaml"),
        "--set",
        "keycloak.url=http://id.example.com",
        "--set",
        "keycloak.internalUrl=http://keycloak.keycloak.svc",
        *[
            arg
            for component in ("hub", "proxy.chp", "singleuser")
            for switch in (
                "dnsPortsCloudMetadataServer",
                "dnsPortsKubeSystemNamespace",
                "dnsPortsPrivateIPs",
                "nonPrivateIPs",
                "privateIPs",
            )
            for arg in ("--set", f"{component}.networkPolicy.egressAllowRules.{switch}=true")
        ],
    )
    for where, docs in variants.items():
        for policy in by_kind(docs, "NetworkPolicy"):
            for rule in policy["spec"].get("egress") or []:
                yield where, policy["metadata"]["name"], rule


def test_no_egress_rule_opens_a_port_to_every_address_and_user_pods_never_reach_the_metadata_server():
    checked = 0
    for where, name, rule in egress_rules():
        checked += 1
        assert rule.get("to"), f"{where}: {name} has an egress rule without `to:` (every destination): {rule}"
        for peer in rule["to"]:
            # 0.0.0.0/0 may stand for "the internet" only with the metadata server cut out of it
            if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0":
                assert not reaches(peer, METADATA), f"{where}: {name} opens {rule.get('ports')} to every address"
            if name == "singleuser" and reaches(peer, METADATA):
                # GKE's Cloud DNS answers on the metadata address: its DNS ports, nothing else
                assert sorted(rule.get("ports") or [], key=str) == sorted(DNS_ONLY, key=str), (
                    f"{where}: user pods reach 169.254.169.254 through {rule}"
                )
    assert checked > 20


def test_the_keycloak_rule_without_peers_is_public_addresses_only(minimal):
    su = one(minimal, "NetworkPolicy", "singleuser")["spec"]["egress"]
    (kc,) = [r for r in su if {"port": 443, "protocol": "TCP"} in (r.get("ports") or [])]
    (peer,) = kc["to"]
    for address in ("169.254.169.254", "10.96.0.10", "172.20.0.1", "192.168.1.1"):
        assert not reaches(peer, ipaddress.ip_address(address)), address
    assert reaches(peer, ipaddress.ip_address("203.0.113.7"))


def test_user_pods_may_never_be_given_the_metadata_server():
    proc = template_minimal("singleuser.networkPolicy.egressAllowRules.cloudMetadataServer=true")
    assert proc.returncode != 0 and "169.254.169.254" in proc.stderr, proc.stderr


def test_ingress_routes_the_base_url_to_proxy_public(rendered):
    ing = one(rendered["ingress.yaml"], "Ingress", "jupyterhub")["spec"]
    (rule,) = ing["rules"]
    assert rule["host"] == "hub.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/jupyter/"
    assert path["backend"]["service"] == {"name": "proxy-public", "port": {"name": "http"}}
    assert ing["ingressClassName"] == "nginx" and ing["tls"][0]["secretName"] == "hub-example-com-tls"


# --- what the hub does with the chart's settings ------------------------------------------------------


def chart_settings(docs: list[dict]) -> dict:
    return json.loads(secret_data(one(docs, "Secret", "hub-extra-config"))["settings.json"])


def apply_chart_config(docs: list[dict]):
    """Apply the chart's settings document the way the hub's entry point does, on a fresh config."""
    from traitlets.config import Config

    from primehub_hub.settings import Settings, apply_settings

    c = Config()
    apply_settings(c, Settings.from_document(chart_settings(docs), env={}))
    return c


def test_chart_config_sets_up_jupyterhub(minimal):
    from kubespawner import KubeSpawner

    c = apply_chart_config(minimal)
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://proxy-api:8001"
    assert c.JupyterHub.hub_connect_url == "http://hub:8081"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    assert c.KubeSpawner.start_timeout == 1200
    # The idle culler runs as a managed service with a role limited to what it needs.
    services = c.JupyterHub.services.get_value([])
    (culler,) = [s for s in services if s["name"] == "jupyterhub-idle-culler"]
    assert culler["command"][:3] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    assert "--timeout=7200" in culler["command"] and "--cull-every=600" in culler["command"]
    (role,) = c.JupyterHub.load_roles.get_value([])
    assert role["services"] == ["jupyterhub-idle-culler"] and "admin:users" not in role["scopes"]
    # The labels user pods get are the ones the single-user NetworkPolicy selects.
    spawner_labels = c.KubeSpawner.common_labels.get_value(KubeSpawner.common_labels.default())
    spawner_labels.update({"app.kubernetes.io/component": KubeSpawner.component_label.default()})
    selector = one(minimal, "NetworkPolicy", "singleuser")["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= spawner_labels.items()
    assert spawner_labels["hub.jupyter.org/network-access-hub"] == "true"
    assert spawner_labels["app.kubernetes.io/name"] == "jupyterhub", "KubeSpawner's own labels are kept"


def test_chart_config_follows_values():
    docs = render(
        "-f",
        str(CHART / "examples/minimal.yaml"),
        "--set",
        "cull.enabled=false",
        "--set",
        "singleuser.defaultUrl=/lab",
        "--set",
        "singleuser.extraEnv.FOO=bar",
        "--set",
        "hub.baseUrl=/jh",
        "--set",
        "singleuser.storage.dynamic.storageClass=fast",
    )
    c = apply_chart_config(docs)
    assert c.JupyterHub.base_url == "/jh/"
    assert c.Spawner.default_url == "/lab"
    assert c.KubeSpawner.environment.get_value({}) == {"FOO": "bar"}
    assert c.KubeSpawner.storage_class == "fast"
    assert "services" not in c.JupyterHub or not c.JupyterHub.services.get_value([])
    probe = container(docs, "hub", "hub")["readinessProbe"]["httpGet"]["path"]
    assert probe == "/jh/hub/health"


def test_the_local_stack_writes_the_document_the_chart_renders(rendered):
    """One settings document: the local stack's hub is configured through the same keys as the chart's."""
    from localstack import hub as local_hub
    from primehub_hub.settings import Settings

    chart = chart_settings(rendered["local-stack.yaml"])
    local = local_hub.settings()
    for document in (chart, local):
        Settings.from_document(document, env={})  # every key known, every value well-formed
    assert set(local) <= set(chart)
    assert set(local["keycloak"]) == set(chart["keycloak"])
    assert set(local["hub"]) - set(chart["hub"]) == {"bindUrl"}  # the chart's proxy is its own Deployment
    assert local["keycloak"]["realm"] == chart["keycloak"]["realm"]


def test_hub_config_passes_any_traitlet_through(tmp_path):
    """As zero-to-jupyterhub's hub.config: an operator sets a trait from values, without Python."""
    values = tmp_path / "config.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "hub": {
                    "config": {
                        "PrimeHubSpawner": {"explicit_zero_requests": True},
                        "KubeSpawner": {"start_timeout": 77},  # wins over singleuser.startTimeout
                    }
                }
            }
        )
    )
    docs = render("-f", str(CHART / "examples/minimal.yaml"), "-f", str(values))
    c = apply_chart_config(docs)
    assert c.PrimeHubSpawner.explicit_zero_requests is True
    assert c.KubeSpawner.start_timeout == 77
    proc = template_minimal("hub.config.PrimeHubSpawner=oops")
    assert proc.returncode != 0 and "schema" in proc.stderr.lower()


def test_extra_config_and_files_go_to_secrets(tmp_path):
    values = tmp_path / "extra.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "hub": {
                    "extraConfig": {"zz-last": "c.JupyterHub.admin_users = {'marker-7f3a'}\n"},
                    "extraFiles": {
                        "settings": {"mountPath": "/etc/x/settings.json", "data": {"a": 1}},
                        "note": {"mountPath": "/etc/x/note.txt", "stringData": "hello", "mode": 0o600},
                    },
                    "extraEnv": {
                        "PLAIN": "1",
                        "FROM_SECRET": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    },
                },
            }
        )
    )
    docs = render("-f", str(CHART / "examples/minimal.yaml"), "-f", str(values))
    extra = secret_data(one(docs, "Secret", "hub-extra-config"))
    assert extra["50-zz-last.py"] == "c.JupyterHub.admin_users = {'marker-7f3a'}\n"
    files = secret_data(one(docs, "Secret", "hub-extra-files"))
    assert json.loads(files["settings"]) == {"a": 1} and files["note"] == "hello"
    hub = container(docs, "hub", "hub")
    mounts = {m["mountPath"]: m for m in hub["volumeMounts"]}
    assert mounts["/etc/x/note.txt"]["subPath"] == "note"
    env = env_of(hub)
    assert env["PLAIN"] == {"name": "PLAIN", "value": "1"}
    assert env["FROM_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "k"}
    assert "marker-7f3a" not in json.dumps(by_kind(docs, "ConfigMap"))


# --- the hub as it would start in the pod -----------------------------------------------------------


def materialize_hub(docs: list[dict], root: Path) -> tuple[Path, dict[str, str]]:
    """Lay out the hub container's mounts under `root` from the rendered objects, and its env.

    Paths in env values that point into a mount are moved under `root` too, so the repository's
    jupyterhub_config.py can be loaded exactly as the pod would load it, only without a cluster.
    """
    spec = one(docs, "Deployment", "hub")["spec"]["template"]["spec"]
    hub = next(c for c in spec["containers"] if c["name"] == "hub")
    configmaps = {d["metadata"]["name"]: d["data"] for d in by_kind(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"]: secret_data(d) for d in by_kind(docs, "Secret")}
    volumes = {v["name"]: v for v in spec["volumes"]}

    def files(source: dict) -> dict[str, str]:
        if "projected" in source:
            return {k: v for s in source["projected"]["sources"] for k, v in files(s).items()}
        if "configMap" in source:
            ref, data = source["configMap"], configmaps[source["configMap"]["name"]]
        elif "secret" in source:
            ref = source["secret"]
            data = secrets[ref.get("secretName") or ref.get("name")]
        else:
            return {}
        if "items" in ref:
            return {i["path"]: data[i["key"]] for i in ref["items"]}
        return dict(data)

    mounts = sorted(hub["volumeMounts"], key=lambda m: m["mountPath"])
    for m in mounts:
        content = files(volumes[m["name"]])
        target = root / m["mountPath"].lstrip("/")
        if "subPath" in m:
            content = {"": content[m["subPath"]]}
        for rel, text in content.items():
            path = target / rel if rel else target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    env = {}
    for e in hub["env"]:
        if "value" in e:
            value = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            value = secrets[ref["name"]][ref["key"]]
        else:
            value = NAMESPACE
        for m in mounts:
            if value.startswith(m["mountPath"]):
                value = str(root / value.lstrip("/"))
        env[e["name"]] = value
    entry = root / "usr/local/etc/jupyterhub/jupyterhub_config.py"
    assert hub["args"][2] == "/usr/local/etc/jupyterhub/jupyterhub_config.py"
    return entry, env


_LOAD_HUB_CONFIG = """
import json, os, sys
from traitlets.config.loader import LazyConfigValue, PyFileConfigLoader
path = sys.argv[1]
c = PyFileConfigLoader(os.path.basename(path), os.path.dirname(path)).load_config()
def plain(v):
    if isinstance(v, LazyConfigValue):
        return v.to_dict()
    if isinstance(v, type):
        return v.__module__ + "." + v.__name__
    return v
out = {f"{cls}.{k}": plain(v) for cls in c for k, v in c[cls].items()}
out["package"] = sys.modules["primehub_hub"].__file__
print(json.dumps(out, default=repr))
"""


def load_hub_config(docs: list[dict], root: Path) -> dict:
    entry, env = materialize_hub(docs, root)
    env = {**env, "PATH": os.environ.get("PATH", ""), "HOME": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_HUB_CONFIG, str(entry)],
        env=env,
        cwd=root,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"the hub's configuration does not load:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_hub_configuration_loads_as_in_the_pod(tmp_path, rendered):
    values = tmp_path / "extra.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "hub": {"extraConfig": {"override": "c.KubeSpawner.start_timeout = 42\n"}},
                "singleuser": {"storage": {"homeMountPath": "/home/user"}},
                "primehub": {"schedulingFailureGrace": 3, "mountFailureGrace": 45, "imagePullFailureGrace": 50},
            }
        )
    )
    docs = render("-f", str(CHART / "examples/minimal.yaml"), "-f", str(values))
    cfg = load_hub_config(docs, tmp_path / "pod")
    # The package the hub imports is the one from the ConfigMap, not an installed copy.
    assert cfg["package"] == str(tmp_path / "pod/usr/local/etc/jupyterhub/primehub_hub/__init__.py")
    assert cfg["JupyterHub.authenticator_class"].endswith("PrimeHubAuthenticator")
    assert cfg["JupyterHub.spawner_class"].endswith("PrimeHubSpawner")
    assert cfg["PrimeHubAuthenticator.client_secret"] == "change-me-minimal-client-secret"
    assert cfg["PrimeHubAuthenticator.keycloak_url"] == "https://id.example.com"
    assert cfg["PrimeHubAuthenticator.public_url"] == "http://hub.example.com"
    assert cfg["KubeSpawner.namespace"] == NAMESPACE
    assert cfg["KubeSpawner.cmd"] == ["jupyterhub-singleuser"]
    assert cfg["KubeSpawner.storage_capacity"] == "1Gi"
    assert cfg["KubeSpawner.volume_mounts"]["home"]["mountPath"] == "/home/user"
    assert cfg["JupyterHub.hub_connect_url"] == "http://hub:8081"
    assert cfg["ConfigurableHTTPProxy.api_url"] == "http://proxy-api:8001"
    assert cfg["PrimeHubSpawner.scheduling_failure_grace"] == 3.0
    assert cfg["PrimeHubSpawner.mount_failure_grace"] == 45.0
    assert cfg["PrimeHubSpawner.image_pull_failure_grace"] == 50.0
    # hub.extraConfig runs last and wins.
    assert cfg["KubeSpawner.start_timeout"] == 42
    services = cfg["JupyterHub.services"]
    assert [s["name"] for s in services.get("extend", services if isinstance(services, list) else [])] == [
        "jupyterhub-idle-culler"
    ], services
    # Without a home volume the chart leaves volumes alone.
    docs = render("-f", str(CHART / "examples/minimal.yaml"), "--set", "singleuser.storage.type=none")
    cfg = load_hub_config(docs, tmp_path / "pod-nohome")
    assert "KubeSpawner.volume_mounts" not in cfg


# --- documentation ----------------------------------------------------------------------------------


def test_every_schema_key_is_described_and_closed():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or 'the root'} accepts unknown keys"
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}.{key} has no description"
            walk(sub, f"{path}.{key}")

    walk(schema, "")


def test_values_schema_json_is_generated_from_the_yaml():
    """values.schema.yaml is what people edit; Helm reads the JSON generated from it."""
    proc = subprocess.run(
        [sys.executable, str(CHART / "tools/values_schema.py"), "--check"], text=True, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((CHART / "values.schema.yaml").read_text()) == json.loads(
        (CHART / "values.schema.json").read_text()
    )


def test_readme_values_table_is_up_to_date():
    proc = subprocess.run(
        [sys.executable, str(CHART / "tools/values_table.py"), "--check"], text=True, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr


def test_notes_tell_how_to_reach_the_hub_and_what_to_register_in_keycloak(tmp_path):
    # helm template skips NOTES.txt and helm install needs a cluster even with --dry-run=client, so
    # render NOTES.txt through tpl in a copy of the chart.
    for name in ("chart", "hub-config", "crds"):
        shutil.copytree(CHART_REPO / name, tmp_path / name, symlinks=True)
    chart = tmp_path / "chart"
    shutil.copy(chart / "templates/NOTES.txt", chart / "files/NOTES.txt")
    (chart / "templates/zz-notes.yaml").write_text(
        'kind: Notes\nmetadata: {name: notes}\ntext: {{ tpl (.Files.Get "files/NOTES.txt") . | toJson }}\n'
    )

    def notes(example: str, *args: str) -> str:
        docs = render("-f", str(chart / "examples" / example), *args, chart=chart)
        return one(docs, "Notes", "notes")["text"]

    text = notes("ingress.yaml")
    assert "Valid redirect URI:             https://hub.example.com/jupyter/hub/oauth_callback" in text
    assert "port-forward service/proxy-public 8000:80" in text and "WARNING" not in text
    text = notes("local-stack.yaml")
    assert "http://127.0.0.1:8000/hub/oauth_callback" in text
    text = notes("minimal.yaml", "--set", "primehub.publicUrl=")
    assert "WARNING: the chart does not know the hub's public address" in text


def test_primehub_migration_values_reach_the_hub():
    """The settings for moving from PrimeHub (docs/migrating-from-primehub.md) as the chart passes them
    on, and zero-to-jupyterhub's own /dev/shm recipe accepted as it is written for z2jh."""
    docs = render(
        "-f",
        str(CHART / "examples/minimal.yaml"),
        "--set",
        "keycloak.scopeRequired=notebook-users",
        "--set",
        "keycloak.logout=legacy",
        "--set",
        "primehub.grantSudo=true",
        "--set",
        "primehub.shmSize=2Gi",
        "--set",
        "primehub.startScriptsConfigMap=start-scripts",
        "--set-json",
        'singleuser.storage.extraVolumes=[{"name":"shm-volume","emptyDir":{"medium":"Memory"}}]',
        "--set-json",
        'singleuser.storage.extraVolumeMounts=[{"name":"shm-volume","mountPath":"/dev/shm"}]',
    )
    from primehub_hub.settings import Settings

    document = chart_settings(docs)
    Settings.from_document(document, env={})  # every key known to the hub
    assert document["keycloak"]["scopeRequired"] == "notebook-users" and document["keycloak"]["logout"] == "legacy"
    ph = document["primehub"]
    assert (ph["grantSudo"], ph["shmSize"], ph["startScriptsConfigMap"], ph["startWrapper"]) == (
        True,
        "2Gi",
        "start-scripts",
        True,
    )
    su = document["singleuser"]
    assert su["startTimeout"] == 1200 and su["kernelCullTimeout"] == 3600
    assert su["storage"]["homePvcNaming"] == "primehub"
    assert su["storage"]["extraVolumeMounts"] == [{"name": "shm-volume", "mountPath": "/dev/shm"}]
    refused = template_minimal("primehub.homePvcNaming=legacy")
    assert refused.returncode != 0 and "homePvcNaming" in refused.stderr


def test_the_dataset_host_path_allow_list_reaches_the_hub(rendered):
    """primehub.datasetHostPaths goes into the settings document, and from there to the spawner."""
    assert chart_settings(rendered["local-stack.yaml"])["primehub"]["datasetHostPaths"] == ["/srv/datasets/"]
    assert apply_chart_config(rendered["local-stack.yaml"]).PrimeHubSpawner.dataset_host_path_prefixes == [
        "/srv/datasets/"
    ]
    # by default no hostPath dataset is mounted
    assert chart_settings(rendered["minimal.yaml"])["primehub"]["datasetHostPaths"] == []
    assert apply_chart_config(rendered["minimal.yaml"]).PrimeHubSpawner.dataset_host_path_prefixes == []
    assert "PRIMEHUB_DATASET_HOST_PATHS" not in env_of(container(rendered["local-stack.yaml"], "hub", "hub"))
