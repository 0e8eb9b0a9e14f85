"""Which Python environment the local stack's hub runs from (`make test-next` sets .venv-next)."""

from pathlib import Path

from localstack import hub
from localstack.common import STATE_DIR

REPO = Path(__file__).resolve().parents[2]


def test_the_hub_runs_from_dot_venv_by_default(monkeypatch):
    monkeypatch.delenv("PRIMEHUB_HUB_VENV", raising=False)
    assert hub.hub_bin() == REPO / ".venv" / "bin"
    assert hub.argv()[0] == str(REPO / ".venv" / "bin" / "jupyterhub")
    assert hub._home() == STATE_DIR / "hub"


def test_primehub_hub_venv_runs_the_hub_from_there_with_its_own_state(monkeypatch):
    monkeypatch.setenv("PRIMEHUB_HUB_VENV", ".venv-next")
    assert hub.argv()[0] == str(REPO / ".venv-next" / "bin" / "jupyterhub")
    # JupyterHub 6 migrates the database: the next hub never opens the current hub's one.
    assert hub._home() == STATE_DIR / "hub-venv-next"


def test_a_port_another_program_holds_is_named_before_a_server_starts():
    import socket

    import pytest

    from localstack import common

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(common.StackError, match=f"port {port} \\(the hub\\) is already in use"):
            common.ensure_ports_free({port: "the hub"}, wait=0)
    common.ensure_ports_free({port: "the hub"}, wait=0)  # free again once the other program is gone
