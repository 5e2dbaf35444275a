"""`objectives-report`: the cost of boosts and diversity, measured through `recommend` and the
gateway's objective functions on the evaluation model."""

from __future__ import annotations

from pathlib import Path

import pytest

from recserve.training.objectives_report import ReportRow, objectives_report
from recserve.training.pipeline import Progress, TrainResult

from .conftest import small_config

Report = tuple[list[ReportRow], str]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Report:
    config = small_config(tmp_path_factory.mktemp("unused"), synthetic_dir)
    return objectives_report(config, attribute="genres", say=Progress(lambda _msg: None))


def test_no_objective_reproduces_the_trained_pipeline(report: Report, trained: TrainResult) -> None:
    rows, _ = report
    none = rows[0]
    assert none.setting == "none"
    # same data, same seeded single-thread word2vec, same ranker: recommend() top 10 is the
    # pipeline row of train's evaluation
    assert none.metrics["hr@10"] == pytest.approx(trained.metrics["pipeline"]["hr@10"])
    assert none.metrics["ndcg@10"] == pytest.approx(trained.metrics["pipeline"]["ndcg@10"])
    assert none.metrics["length"] == 10


def test_objectives_do_what_they_say(report: Report) -> None:
    rows, table = report
    by_name = {r.setting: r.metrics for r in rows}
    none = by_name["none"]
    # a cap of 1 leaves fewer items, and no genre twice: every item brings a new genre
    cap1 = by_name["cap 1 per genres"]
    assert cap1["length"] < by_name["cap 2 per genres"]["length"] <= 10
    assert cap1["distinct"] >= cap1["length"]
    assert none["distinct"] < none["length"] * 2  # unconstrained lists repeat genres
    assert by_name["MMR λ=0.3 (genres overlap)"]["distinct"] > none["distinct"]
    assert by_name["boost margin x 1.0"]["margin"] > by_name["boost margin x 0.01"]["margin"]
    assert by_name["boost margin x 1.0"]["margin"] > none["margin"]
    assert by_name["boost year x 1.0"]["year"] > none["year"]
    for name in by_name:
        assert f"| {name} |" in table
