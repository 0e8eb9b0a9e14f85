"""The repositories git datasets need on the nodes, for the chart's git-sync DaemonSet.

The DaemonSet (chart/templates/gitsync/daemonset.yaml, value gitSync.enabled) runs two containers
on every node. This module, in the hub's image, lists the namespace's Datasets every period and
writes one line `<name> <url>` per git dataset to a file they share; the git-sync container reads
that file and syncs each repository into `<gitSyncHostRoot><name>/`, where git-sync keeps the
checkout behind the link `<name>` (swapped on every sync). That is the folder the spawner mounts
(datasets.py), so a user's server sees the repository's files at /datasets/<name>.

Standard library only (the ServiceAccount's token and the API server's REST interface), so that any
image with Python runs it. Whoever may write Datasets is not trusted with the node: a repository
address must be a network one (no `file://`, no local path, nothing that git could read as an option).

    python -m primehub_hub.gitsync --namespace primehub --out /run/gitsync/repositories [--period 60] [--once]
"""

import argparse
import json
import logging
import os
import re
import ssl
import sys
import time
import urllib.request

from .resources import GROUP, VERSION, InvalidResource, parse_dataset

_log = logging.getLogger("primehub_hub.gitsync")
# https://host/..., http://, ssh://, git:// and scp-like user@host:path; no spaces, never an option.
REPOSITORY = re.compile(r"^((https?|ssh|git)://[^\s/@]+(@[^\s/]+)?/\S+|[\w.][\w.-]*@[\w.-]+:[^\s-]\S*)$")
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def repository_refusal(url):
    """Why the DaemonSet will not sync this address, or None."""
    if not isinstance(url, str) or not url:
        return "it has no spec.url"
    if not REPOSITORY.match(url):
        return f"spec.url {url[:100]!r} is not a network git address (https://, ssh://, git:// or user@host:path)"
    return None


def repositories(objects, *, log=None):
    """[(name, url)] of the git datasets this DaemonSet syncs, sorted; others are skipped with a log line."""
    log = log or _log
    found = {}
    for obj in objects:
        try:
            dataset = parse_dataset(obj)
        except InvalidResource as e:
            log.warning("%s; not synced", e)
            continue
        if dataset.type != "git":
            continue
        if dataset.git_sync_host_root:
            # another syncer serves datasets kept in their own node folder
            log.info("Dataset %s has its own git-sync host root; not synced here", dataset.name)
            continue
        url = (obj.get("spec") or {}).get("url")
        refusal = repository_refusal(url)
        if refusal:
            log.warning("Dataset %s is not synced: %s", dataset.name, refusal)
            continue
        found[dataset.name] = url
    return sorted(found.items())


def repositories_text(repos):
    """The shared file: one `<name> <url>` line per repository (names are DNS labels, urls have no spaces)."""
    return "".join(f"{name} {url}\n" for name, url in repos)


def list_datasets(namespace, *, api=None, folder=SERVICE_ACCOUNT, timeout=30):
    """The namespace's Dataset objects, read with the pod's ServiceAccount."""
    api = api or "https://{}:{}".format(
        os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    )
    with open(os.path.join(folder, "token"), encoding="utf-8") as f:
        token = f.read().strip()
    context = ssl.create_default_context(cafile=os.path.join(folder, "ca.crt"))
    request = urllib.request.Request(
        f"{api}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/datasets",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
        return json.load(response).get("items") or []


def write_if_changed(path, text):
    """Replace the file at once (the git-sync container never reads half of it); True when it changed."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return True


def sync_once(namespace, out, *, lister=list_datasets):
    repos = repositories(lister(namespace))
    if write_if_changed(out, repositories_text(repos)):
        _log.info("git datasets to sync: %s", ", ".join(name for name, _ in repos) or "none")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m primehub_hub.gitsync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--out", required=True, help="the file the git-sync container reads")
    parser.add_argument("--period", type=float, default=60, help="seconds between two listings")
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    while True:
        try:
            sync_once(args.namespace, args.out)
        except (OSError, ValueError) as e:
            # the previous list stays: the repositories already synced keep being synced
            _log.warning("Cannot list the Datasets of %s: %s; trying again in %ss", args.namespace, e, args.period)
            if args.once:
                return 1
        if args.once:
            return 0
        time.sleep(args.period)


if __name__ == "__main__":
    sys.exit(main())
