"""docs/benchmarks.md's case 7 (a thousand running servers) from a results file: the rows, the
per-server memory and the verdicts the page states (benchmarks/report.py)."""

import pytest

from benchmarks import report


def _measured(form_p50: float, spawn_p50: float, hub_mib: float) -> dict:
    return {
        "form": {
            "server_ms_warm": {"n": 10, "p50": form_p50, "p95": form_p50 * 1.5},
            "keycloak_calls_per_render": [0] * 10,
            "k8s_calls_per_render": [0] * 10,
        },
        "spawn": {
            "ours_ms": {"n": 3, "p50": spawn_p50, "p95": spawn_p50 * 2},
            "request_to_pod_create_ms": {"p50": 40.0},
        },
        "rss_mib": {"hub": hub_mib, "proxy": 60.0},
        "agent_rss_mib": 90.0,
        "loop_stall_max_ms": 30.0,
        "loop_blocked_max_ms": 12.0,
    }


def _restart(running: int, hub_mib: float, lost: int = 0) -> dict:
    return {
        "running": running,
        "hub_api_s": 3.2,
        "all_ready_s": 4.0 + running / 100,
        "all_routes_s": 5.0 + running / 100,
        "listed_active": running - lost,
        "listed_ready": running - lost,
        "lost": lost,
        "rss_mib": {"hub": hub_mib, "proxy": 55.0},
    }


def _results(spawn_at_n: float = 11.0, lost: int = 0) -> dict:
    run = {"date": "2026-12-02 09:30 UTC", "command": "python -m benchmarks --only servers", "hub_versions": {}}
    return {
        "servers": {
            "run": run,
            "primehub": {
                "servers": 1000,
                "base": 10,
                "nodes": 11,
                "keycloak_setup_s": 40.0,
                "nodes_ready_s": 3.0,
                "spawn_base": {"spawned": 10, "seconds": 4.0, "batch": 50, "batch_s": {"p50": 4.0}, "failed": 0},
                "spawn_rest": {"spawned": 990, "seconds": 200.0, "batch": 50, "batch_s": {"p50": 10.0}, "failed": 0},
                "pods_per_node": {"bench-node-0": 91, "bench-node-1": 90},
                "at_base": _measured(10.0, 10.0, 150.0),
                "at_n": _measured(11.0, spawn_at_n, 450.0),
                "restart_base": _restart(10, 120.0),
                "restart_n": _restart(1000, 417.0, lost),
            },
        }
    }


def test_the_page_compares_ten_and_a_thousand_servers():
    lines, verdicts = report.section_servers(_results()["servers"])
    page = "\n".join(lines)
    assert page.startswith("## 7. 1,000 running servers")
    assert "| warm form, server-side ms p50 / p95 | 10.0 / 15.0 | 11.0 / 16.5 | 1.1x |" in page
    # (417 - 120) MiB over the 990 servers between 10 and 1,000, in the restarted hubs
    assert "| hub RSS MiB, restarted hub | 120.0 | 417.0 | 0.300 MiB per server |" in page
    assert "| restart: every server ready again, s | 4.10 | 14.00 | |" in page
    assert "bench-node-0 91, bench-node-1 90" in page
    assert verdicts["7. 1,000 servers: warm form within 1.2x of 10 (real stack)"] == (True, "1.1x")
    assert verdicts["7. 1,000 servers: spawn overhead within 1.2x of 10 (real stack)"] == (True, "1.1x")
    found_ok, found_text = verdicts["7. 1,000 servers: a hub restart finds every server"]
    assert found_ok and found_text.startswith("1000 of 1000 ready after 14.0 s")


@pytest.mark.parametrize(
    "spawn_at_n, lost, missed",
    [
        (15.0, 0, "7. 1,000 servers: spawn overhead within 1.2x of 10 (real stack)"),
        (11.0, 3, "7. 1,000 servers: a hub restart finds every server"),
    ],
)
def test_a_miss_is_reported_as_one(spawn_at_n, lost, missed):
    _, verdicts = report.section_servers(_results(spawn_at_n, lost)["servers"])
    assert verdicts[missed][0] is False


def test_a_failed_run_says_why_and_claims_nothing():
    res = {"run": {"date": "d", "command": "c"}, "primehub": {"error": "RuntimeError: 40 of 300 spawns failed"}}
    lines, verdicts = report.section_servers(res)
    assert verdicts == {}
    assert "- `primehub` failed: RuntimeError: 40 of 300 spawns failed" in lines


def test_the_before_and_after_table_shows_the_real_case():
    results = _results()
    page = "\n".join(report.section_before_after(results))
    assert (
        "| real stack: warm form server-side p50 ms, 10 / 1,000 servers | 10.4 / 15.5 (1.49x) | 10.0 / 11.0 (1.1x) |"
        in page
    )  # before: the run before the watches resumed (baseline.json)
    assert (
        "| hub memory per running server, MiB (restarted hub; the hub that spawned them) | not measured | 0.300; 0.303 |"
        in page
    )
    assert (
        "| hub restart: every server ready again, s (found of started) | not measured | 14.0 (1000 of 1000) |" in page
    )


def test_a_quick_run_says_how_many_servers_it_kept():
    res = _results()["servers"]
    res["primehub"]["servers"] = 100
    page = "\n".join(report.section_servers(res)[0])
    assert "**This run kept 100 servers running, not 1,000.**" in page
    assert "| measure | 10 servers | 100 servers | ratio |" in page


def test_a_run_that_failed_half_way_keeps_what_it_measured():
    res = _results()["servers"]
    del res["primehub"]["at_n"], res["primehub"]["restart_n"]
    res["primehub"]["error"] = "TimeoutError: bench nodes not Ready"
    lines, verdicts = report.section_servers(res)
    page = "\n".join(lines)
    assert "| warm form, server-side ms p50 / p95 | 10.0 / 15.0 | – / – | – |" in page
    assert "- `primehub` failed: TimeoutError: bench nodes not Ready" in page
    assert {ok for ok, _ in verdicts.values()} == {None}


def test_what_dominates_names_the_restart_and_the_memory():
    found = "\n".join(report.findings(_results()))
    assert "**Running servers (case 7).** With 1000 servers the warm form costs 1.1x" in found
    assert "0.300 MiB per running server" in found and "every server ready again after 14.0 s" in found
