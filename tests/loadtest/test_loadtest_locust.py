import os
import subprocess
import sys
from pathlib import Path

from loadtest import stack

LOCUST = Path(sys.executable).with_name("locust")
ROOT = Path(__file__).resolve().parents[2]


def run_locust(host: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        RECSERVE_LOCUST_USERS="2",
        RECSERVE_LOCUST_RATE="20",
        RECSERVE_LOCUST_DURATION="4s",  # enough calls that every task is drawn
    )
    return subprocess.run(
        [str(LOCUST), "-f", "loadtest/locustfile.py", "--host", host, "--only-summary"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_locust_session_passes_against_echo_server() -> None:
    with stack.echo_server() as echo:
        res = run_locust(echo.target)
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("RecordEvents", "Recommend", "GetSimilarItems"):
        assert name in res.stderr + res.stdout


def test_locust_exits_non_zero_on_errors() -> None:
    res = run_locust("127.0.0.1:1")  # nothing listens on port 1
    assert res.returncode == 1
