"""Fixtures of the unit tests. Helpers that are plain functions live in hub_scenario.py; the
folders the tests import from are on pytest.ini's `pythonpath`."""

import pytest
from kubernetes_asyncio.client import Configuration

from hub_scenario import catalog


@pytest.fixture
def scenario_catalog():
    return catalog()


@pytest.fixture
def offline_kube():
    """KubeSpawner can be constructed without a cluster; the process state is put back after."""
    from kubespawner.clients import load_config

    from primehub_hub.offline import offline_kube_config

    saved = Configuration.get_default_copy()
    load_config.cache_clear()
    with offline_kube_config():
        yield
    load_config.cache_clear()
    Configuration.set_default(saved)
