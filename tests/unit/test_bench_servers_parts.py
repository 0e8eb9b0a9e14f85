"""The parts of benchmarks case 7 that need no servers: how many extra nodes it asks for, and how
the bench hub counts its running servers for the case to watch (benchmarks/benchnodes.py, hubside.py)."""

from types import SimpleNamespace

import pytest

from benchmarks import benchnodes, hubside


@pytest.mark.parametrize("servers", [10, 100, 1000, 1234])
def test_the_extra_nodes_hold_every_server_on_several_nodes(servers):
    specs = benchnodes.node_specs(benchnodes.node_count(servers))
    assert len(specs) >= 2
    # room for the servers and the scheduler's uneven spreading
    assert len(specs) * benchnodes.PODS_PER_NODE >= servers * 1.1
    for spec in specs:
        assert spec["name"].startswith(benchnodes.NODE_PREFIX)
        # only pods that select and tolerate them land there: the stack's own pods never do
        assert spec["labels"][benchnodes.NODE_LABEL] == "true"
        assert spec["taints"] == [benchnodes.TAINT]
    assert benchnodes.TOLERATION["key"] == benchnodes.TAINT["key"]


def _spawner(active: bool, ready: bool, pending):
    return SimpleNamespace(active=active, ready=ready, pending=pending)


def test_the_bench_hub_counts_active_ready_and_pending_servers():
    users = {
        1: SimpleNamespace(spawners={"": _spawner(True, True, None)}),
        2: SimpleNamespace(spawners={"": _spawner(True, False, "spawn")}),
        3: SimpleNamespace(spawners={"": _spawner(False, False, None), "named": _spawner(True, False, "check")}),
        4: SimpleNamespace(spawners={}),
    }
    assert hubside.server_counts(users) == {"active": 3, "ready": 1, "pending": 2}
