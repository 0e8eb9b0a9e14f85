"""primehub-profiles: see what a user may launch, and the pod the hub would create.

    primehub-profiles explain --user alice --realm realm.json --resources crds/examples [--json]
    primehub-profiles pod --user alice --group data-science --instance-type cpu-small \\
        --image base-notebook --realm realm.json --resources crds/examples [--json]

Inputs are a Keycloak realm export and YAML (or JSON) files or folders of custom resources;
`--live` reads the running Keycloak (the hub's service account: its settings document at
$PRIMEHUB_SETTINGS and PRIMEHUB_KEYCLOAK_CLIENT_SECRET) and the
cluster (current kube config) instead. `pod` goes through the spawner the hub runs
(PrimeHubSpawner.load_user_options, then KubeSpawner's get_pod_manifest) with the hub's
jupyterhub_config.py, counting no current usage. Exit status: 0 done, 1 the launch is refused
(the message is the one the user would see), 2 bad input.
"""

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

from . import __version__
from .errors import PrimeHubError
from .explain import explain_user, render_text
from .realm_export import RealmExportError, load_realm_export, user_info_from_realm_export
from .resources import GROUP, PLURALS, VERSION, Catalog

EXIT_REFUSED = 1
EXIT_INPUT = 2
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "jupyterhub_config.py"


class InputError(Exception):
    pass


def _resource_files(path):
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
    if path.is_file():
        return [path]
    raise InputError(f"{path}: no such file or folder")


def load_resource_objects(paths):
    """All documents of the given YAML/JSON files or folders; `kind: List` is unpacked."""
    import yaml

    objects = []
    for path in paths:
        for file in _resource_files(path):
            try:
                with open(file, encoding="utf-8") as f:
                    docs = list(yaml.safe_load_all(f))
            except yaml.YAMLError as e:
                raise InputError(f"{file}: not valid YAML: {e}") from None
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "List":
                    objects.extend(doc.get("items") or [])
                elif isinstance(doc, dict):
                    objects.append(doc)
    return objects


def _offline_inputs(args):
    if not args.realm:
        raise InputError("--realm REALM_EXPORT.json is required (or --live)")
    try:
        export = load_realm_export(args.realm)
        user = user_info_from_realm_export(export, args.user)
    except (OSError, ValueError) as e:
        raise InputError(str(e)) from None
    catalog = Catalog.from_objects(load_resource_objects(args.resources or []))
    return user, catalog


async def _live_inputs(args):
    """The user from Keycloak's admin API and the catalog from the cluster, read once."""
    from kubernetes_asyncio import client, config

    from .keycloak import KeycloakAdmin

    settings = _settings()
    if not settings.keycloak_internal_url or not settings.client_secret:
        raise InputError(
            "--live needs the hub's settings ($PRIMEHUB_SETTINGS, with keycloak.url) and PRIMEHUB_KEYCLOAK_CLIENT_SECRET"
        )
    admin = KeycloakAdmin(settings.keycloak_internal_url, settings.realm, settings.client_id, settings.client_secret)
    user = await admin.load_user_info(args.user)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    namespace = args.namespace or settings.namespace
    objects = []
    async with client.ApiClient() as api_client:
        api = client.CustomObjectsApi(api_client)
        for kind, plural in PLURALS.items():
            listed = await api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
            for item in listed.get("items") or []:
                item.setdefault("kind", kind)
                objects.append(item)
    return user, Catalog.from_objects(objects)


async def _inputs(args):
    if args.live:
        return await _live_inputs(args)
    return _offline_inputs(args)


def _settings():
    from .settings import Settings, SettingsError

    try:
        return Settings.load()
    except SettingsError as e:
        raise InputError(str(e)) from None


def _prefix(args):
    return args.prefix if args.prefix is not None else _settings().role_prefix


def _load_hub_config(path):
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(path)
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


async def build_pod(user, catalog, options, *, prefix="", namespace=None, config=None):
    """The pod (a dict in API field names) the hub's spawner would create for these choices."""
    from kubernetes_asyncio.client import ApiClient

    from .spawner import PrimeHubSpawner

    owner = SimpleNamespace(name=user.username, id=0, url=f"/user/{user.username}/")
    hub = SimpleNamespace(
        public_host="", url="http://hub:8081/hub/", base_url="/hub/", api_url="http://hub:8081/hub/api"
    )
    kwargs = {"config": config} if config is not None else {}
    spawner = PrimeHubSpawner(
        _mock=True,
        user=owner,
        hub=hub,
        primehub_user=user,
        primehub_catalog=catalog,
        primehub_pods=[],
        options_explicit=True,
        **kwargs,
    )
    if prefix is not None:
        spawner.role_prefix = prefix
    if namespace:
        spawner.namespace = namespace
    spawner.user_options = dict(options)
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    if spawner.modify_pod_hook:
        from jupyterhub.utils import maybe_future

        pod = await maybe_future(spawner.modify_pod_hook(spawner, pod))
    async with ApiClient() as api_client:
        return api_client.sanitize_for_serialization(pod)


async def _explain(args):
    user, catalog = await _inputs(args)
    doc = _settings().document
    report = explain_user(
        user,
        catalog,
        _prefix(args),
        home_default=doc["singleuser"]["storage"]["capacity"],
        home_naming=doc["singleuser"]["storage"]["homePvcNaming"],
        shm_setting=doc["primehub"]["shmSize"],
        git_sync_on_nodes=doc["primehub"]["gitSyncOnNodes"],
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render_text(report))
    return 0


async def _pod(args):
    user, catalog = await _inputs(args)
    config = None
    if not args.no_config:
        config_path = Path(args.config) if args.config else DEFAULT_CONFIG
        if config_path.is_file():
            config = _load_hub_config(config_path)
        elif args.config:
            raise InputError(f"{config_path}: no such config file")
    options = {"group": args.group, "instance_type": args.instance_type, "image": args.image}
    options = {k: v for k, v in options.items() if v}
    pod = await build_pod(user, catalog, options, prefix=_prefix(args), namespace=args.namespace, config=config)
    if args.json:
        print(json.dumps(pod, indent=2))
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(pod, sort_keys=False))
    return 0


def _parser():
    parser = argparse.ArgumentParser(prog="primehub-profiles", description="What a PrimeHub user may launch, and how.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def inputs(sub):
        sub.add_argument("--user", required=True, help="username")
        sub.add_argument("--realm", help="Keycloak realm export (JSON)")
        sub.add_argument(
            "--resources", action="append", help="YAML/JSON file or folder of custom resources (repeatable)"
        )
        sub.add_argument("--live", action="store_true", help="read the running Keycloak and cluster instead")
        sub.add_argument(
            "--prefix", default=None, help="grant role prefix (default: the hub settings' keycloak.rolePrefix)"
        )
        sub.add_argument("--namespace", default=None, help="namespace (default: the hub's)")
        sub.add_argument("--json", action="store_true", help="machine-readable output")

    explain = commands.add_parser("explain", help="launch groups, offers, datasets and quotas of a user, with reasons")
    inputs(explain)
    pod = commands.add_parser("pod", help="the pod the hub would create for a launch")
    inputs(pod)
    pod.add_argument("--group", required=True)
    pod.add_argument("--instance-type", required=True)
    pod.add_argument("--image", required=True)
    pod.add_argument("--config", help=f"hub config file (default: {DEFAULT_CONFIG.name} next to the package, if any)")
    pod.add_argument("--no-config", action="store_true", help="use KubeSpawner defaults instead of the hub config")
    return parser


async def _run(args):
    if args.command == "explain":
        return await _explain(args)
    from .offline import offline_kube_config

    if args.live:
        return await _pod(args)
    # building the pod never talks to a cluster; KubeSpawner only needs a client config
    with offline_kube_config():
        return await _pod(args)


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # the hub config warns about unset login settings, which do not matter here
    logging.getLogger("primehub_hub.config").setLevel(logging.ERROR)
    try:
        return asyncio.run(_run(args))
    except PrimeHubError as e:
        print(f"refused: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except (InputError, RealmExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
