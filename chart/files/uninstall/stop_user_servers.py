"""Stop the release's user servers before `helm uninstall` removes the hub (the chart's pre-delete hook).

Without it the servers would keep running with no hub to stop them and no proxy to reach them. The
hook's Job runs this file with the hub image's Python and a service account that may only list and
delete pods in the release namespace. It deletes the pods the selector names (KubeSpawner's
singleuser-server pods of this release) and waits until they are gone, deleting any that a late
spawn adds meanwhile. Everything else stays: home and project PVCs, the hub's database volume, the
catalog and the CRDs; chart/README.md ("Uninstall") says how to remove them by hand.

Settings come from the environment: PRIMEHUB_NAMESPACE, PRIMEHUB_USER_POD_SELECTOR (a label selector)
and PRIMEHUB_STOP_TIMEOUT (seconds to wait for the pods to go; the Job fails after that and so does
`helm uninstall`, naming the pods that are left).
"""

import asyncio
import os
import sys

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException


def still_running(pods):
    """Names of the pods not being deleted yet (no deletionTimestamp)."""
    return sorted(p.metadata.name for p in pods if p.metadata.deletion_timestamp is None)


async def stop_user_servers(api, namespace, selector, timeout, interval=2.0, log=print):
    """Delete every pod `selector` names until none is left; returns the names left after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stopped, first = set(), True
    while True:
        pods = (await api.list_namespaced_pod(namespace, label_selector=selector)).items
        if not pods:
            log(f"no user server left in {namespace} ({len(stopped)} stopped)")
            return []
        # every pod gets its delete before the time is up, however short the timeout
        if not first and loop.time() >= deadline:
            return sorted(p.metadata.name for p in pods)
        for name in still_running(pods):
            try:
                await api.delete_namespaced_pod(name, namespace)
            except ApiException as e:
                if e.status != 404:  # a 404: the pod went on its own meanwhile
                    raise
            if name not in stopped:
                log(f"stopping user server pod {name}")
                stopped.add(name)
        first = False
        await asyncio.sleep(interval)


async def main(env):
    config.load_incluster_config()
    namespace = env["PRIMEHUB_NAMESPACE"]
    selector = env["PRIMEHUB_USER_POD_SELECTOR"]
    async with client.ApiClient() as api_client:
        left = await stop_user_servers(
            client.CoreV1Api(api_client), namespace, selector, float(env.get("PRIMEHUB_STOP_TIMEOUT", "180"))
        )
    if left:
        print(f"user server pods still there after the timeout: {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(os.environ)))
