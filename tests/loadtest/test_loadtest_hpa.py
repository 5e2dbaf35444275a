import math

import pytest

from loadtest import hpa


def test_replicas_from_average_metric() -> None:
    # average 150 against target 100 on 2 pods: ceil(1.5 * 2) = 3
    assert hpa.plain_metric_replicas({"a": 150, "b": 150}, set(), 2, 100, 0.1) == 3
    # within the 10 % tolerance: no change
    assert hpa.plain_metric_replicas({"a": 105, "b": 108}, set(), 2, 100, 0.1) == 2
    # scale down: average 40 on 5 pods -> ceil(0.4 * 5) = 2
    assert hpa.plain_metric_replicas({p: 40 for p in "abcde"}, set(), 5, 100, 0.1) == 2
    # no metrics at all: the controller keeps the scale
    assert hpa.plain_metric_replicas({}, {"a"}, 1, 100, 0.1) == 1


def test_unready_and_missing_pods() -> None:
    # scale-up with a pending pod: it counts as 0 -> (200 + 200 + 0) / 3 = 133 % -> ceil(4.0) = 4
    assert hpa.plain_metric_replicas({"a": 200, "b": 200}, {"c"}, 3, 100, 0.1) == 4
    # scale-down with a pod lacking metrics: it counts as at-target -> (50 + 100) / 2 = 75 %
    # -> ceil(0.75 * 2) = 2: no scale down on half the information
    assert hpa.plain_metric_replicas({"a": 50}, set(), 2, 100, 0.1, missing={"b"}) == 2
    # scale-up, a new pod without metrics counts 0: (300 + 0) / 2 = 150 % -> 3
    assert hpa.plain_metric_replicas({"a": 300}, set(), 2, 100, 0.1, missing={"b"}) == 3
    # filling in flips the direction (110 % -> 55 %): keep the scale
    assert hpa.plain_metric_replicas({"a": 110}, {"b"}, 2, 100, 0.05) == 2


def spec(**kw: object) -> hpa.HpaSpec:
    return hpa.HpaSpec(min_replicas=1, max_replicas=100, target=100, **kw)  # type: ignore[arg-type]


def test_default_scale_up_limit_is_max_of_4_pods_and_100_percent() -> None:
    assert hpa.HpaController(spec()).decide(0, 30, 10) == 20  # max(10 + 4, 2 * 10)
    assert hpa.HpaController(spec()).decide(0, 10, 2) == 6  # max(2 + 4, 2 * 2)
    c = hpa.HpaController(spec())
    assert c.decide(0, 100, 10) == 20
    # 15 s later the period restarts: from 20 to max(24, 40) = 40
    assert c.decide(15, 100, 20) == 40
    assert hpa.HpaController(hpa.HpaSpec(1, 12, 100)).decide(0, 30, 10) == 12  # maxReplicas


def test_scale_down_waits_for_the_stabilization_window() -> None:
    c = hpa.HpaController(spec())
    assert c.decide(0, 10, 10) == 10
    for t in range(15, 300, 15):
        assert c.decide(t, 2, 10) == 10, t  # the t=0 recommendation of 10 is in the window
    assert c.decide(300, 2, 10) == 2  # window (0, 300]: only 2s left; 100 %/15 s allows it


def test_percent_scale_down_policy_counts_the_period() -> None:
    rules = hpa.ScalingRules(0, (hpa.ScalingPolicy("Percent", 10, 60),))
    c = hpa.HpaController(spec(scale_down=rules))
    assert c.decide(0, 2, 10) == 9  # int(10 * 0.9)
    assert c.decide(15, 2, 9) == 9  # period start = 9 + 1 removed = 10 -> 9 again
    assert c.decide(61, 2, 9) == 8  # the first event left the 60 s period


def test_scale_up_stabilization_takes_the_lowest_recent_recommendation() -> None:
    rules = hpa.ScalingRules(60, hpa.DEFAULT_SCALE_UP.policies)
    c = hpa.HpaController(spec(scale_up=rules))
    assert c.decide(0, 4, 4) == 4
    assert c.decide(15, 8, 4) == 4  # min over the window still 4
    assert c.decide(75, 8, 4) == 8  # the 4 left the 60 s window


def test_simulation_converges_to_load_over_target() -> None:
    s = hpa.HpaSpec(min_replicas=2, max_replicas=50, target=100)
    res = hpa.simulate(lambda t: 1000.0, 900, s, start_delay_s=30)
    assert res.replicas[0] == 2
    assert res.replicas[-1] == 10
    assert res.ready[-1] == 10
    assert res.per_pod[-1] == pytest.approx(100.0)
    assert res.seen[-1] == pytest.approx(100.0)
    # metrics lag: nothing can change before the first sync with two scrapes in the window
    assert (res.replicas[:30] == 2).all()


def test_simulation_scales_down_only_after_five_minutes() -> None:
    s = hpa.HpaSpec(min_replicas=1, max_replicas=50, target=100)
    res = hpa.simulate(lambda t: 1000.0 if t < 300 else 100.0, 1200, s, initial=10)
    assert (res.replicas[:600] == 10).all()  # drop at 300 s, seen ~90 s later, +300 s window
    assert res.replicas[-1] == 1


def test_diurnal_curve_totals_84m_and_peaks_above_1000() -> None:
    f = hpa.diurnal()
    total = sum(f(t) for t in range(hpa.DAY_S))
    assert total == pytest.approx(84e6, rel=1e-6)
    assert max(f(t) for t in range(0, hpa.DAY_S, 60)) > 1000
    g = hpa.spike(1000.0, 3.0, at_s=10, length_s=5)
    assert [g(9), g(10), g(14), g(15)] == [1000.0, 3000.0, 3000.0, 1000.0]


def test_nodes_for_cpu() -> None:
    sizing = hpa.Sizing()
    assert hpa.nodes_for(0.0, sizing) == 1  # Redis alone
    per_node = sizing.node_cpu - sizing.node_reserved_cpu
    assert hpa.nodes_for(2 * per_node - 1.0, sizing) == 2
    assert hpa.nodes_for(2 * per_node, sizing) == 3
    assert math.isclose(
        hpa.static_cost(1000.0, {"gw": {"target_rps_per_pod": 100.0}}, sizing)["pods"]["gw"], 10
    )


def bench_step(rate: float, p99: float, stack_cores: float, errors: int = 0) -> dict[str, object]:
    return {
        "offered_qps": rate,
        "achieved_qps": rate,
        "errors": errors,
        "latency": {"p50_ms": p99 / 3, "p99_ms": p99},
        "stack_cores": stack_cores,
        "generator_cores": 0.0,
        "machine_busy_cores": 2.0,  # other tenants: must not count as our utilization
        "stack_cpu_ms_per_req_by_process": {"gateway": 2.0, "ranking": 1.0, "redis": 0.1},
    }


def test_capacity_and_targets_by_hand() -> None:
    doc = {
        "meta": {"date": "d"},
        "valid": True,
        "targets": {
            "stack": {
                "best_rate": {"50": 200.0},
                "steps": [
                    bench_step(100, 20.0, 0.3),
                    bench_step(200, 40.0, 0.6),
                    bench_step(300, 30.0, 0.9),  # noisy dip: the envelope keeps 40
                    bench_step(400, 500.0, 1.2, errors=3),  # not kept up: left out
                ],
            }
        },
    }
    cap = hpa.capacity_from_openloop(doc, 50.0, cpus=2)
    assert cap.utilization_at_slo == pytest.approx(0.3)
    assert cap.p99_vs_utilization == {0.15: 20.0, 0.3: 40.0, 0.45: 40.0}
    targets = hpa.derive_targets(cap, hpa.Sizing())
    assert set(targets) == {"gateway", "ranking"}  # Redis is not autoscaled
    # one gateway pod: 0.3 of a core at the SLO, 2 ms per request -> 150 req/s; 65 % -> 97.5
    assert targets["gateway"]["rps_per_pod_at_slo"] == pytest.approx(150.0)
    assert targets["gateway"]["target_rps_per_pod"] == pytest.approx(97.5)
    assert targets["ranking"]["target_rps_per_pod"] == pytest.approx(195.0)
    assert targets["gateway"]["target_cpu_utilization_percent"] == 20  # 65 % of 30 %
    # A run taken beside other work, or by a version without the quiet check, sets nothing.
    unchecked = {k: v for k, v in doc.items() if k != "valid"}
    for bad in ({**doc, "valid": False}, unchecked):
        with pytest.raises(SystemExit, match="not valid"):
            hpa.capacity_from_openloop(bad, 50.0, cpus=2)
