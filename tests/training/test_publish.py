"""Publish against a real redis-server (tests/conftest.py starts one on a free port)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from recserve.devstack.stack import free_port, wait_for_redis
from recserve.model import Bundle, RedisLayout, active_version, load_bundle, publish_bundle
from recserve.model.bundle import iter_user_seed
from recserve.model.redis_layout import gc_versions, published_versions, read_vectors
from recserve.training.pipeline import TrainResult

LAYOUT = RedisLayout()


def _seed(bundle: Bundle) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    histories, features = {}, {}
    for user_id, events, feats in iter_user_seed(bundle):
        histories[user_id] = events
        features[user_id] = feats
    return histories, features


def _version_keys(client: redis.Redis, version: str) -> list[Any]:
    return list(client.scan_iter(match=LAYOUT.version_pattern(version)))


def test_publish_writes_everything_under_the_version(
    redis_client: redis.Redis, versions: list[Bundle]
) -> None:
    bundle = versions[0]
    histories, features = _seed(bundle)
    result = publish_bundle(redis_client, bundle, user_histories=histories, user_features=features)
    assert result.previous is None and result.vectors == len(bundle.item_ids)
    assert active_version(redis_client) == bundle.version
    assert published_versions(redis_client) == [bundle.version]
    meta = {
        k.decode(): v.decode()
        for k, v in redis_client.hgetall(LAYOUT.meta_key(bundle.version)).items()
    }
    assert int(meta["dim"]) == bundle.dim and int(meta["count"]) == len(bundle.item_ids)
    assert json.loads(meta["query"]) == bundle.query.to_dict()
    assert json.loads(meta["popular"]) == [bundle.item_ids[i] for i in bundle.popular]
    got, found = read_vectors(redis_client, bundle.version, bundle.item_ids, bundle.dim)
    assert found.all()
    np.testing.assert_array_equal(got, bundle.input_vectors)
    stored = redis_client.hget(LAYOUT.item_features_key(bundle.version), bundle.item_ids[0])
    assert json.loads(stored) == bundle.item_features[0]
    # one hash slot per version: MGET works on Redis Cluster
    assert {k.split(b"}")[0] for k in _version_keys(redis_client, bundle.version)} == {
        f"recserve:{{v{bundle.version}".encode()
    }

    user_id, events = next(iter(histories.items()))
    assert [
        e.decode() for e in redis_client.lrange(LAYOUT.user_events_key(user_id), 0, -1)
    ] == events[::-1][:200]
    stored_features = {
        k.decode(): v.decode()
        for k, v in redis_client.hgetall(LAYOUT.user_features_key(user_id)).items()
    }
    assert stored_features == features[user_id]
    # what serving reads back from Redis encodes exactly like the training data did
    candidates, ann = np.arange(5), np.linspace(1, 0, 5).astype(np.float32)
    encoder = bundle.ranker.encoder
    assert (
        encoder.encode(stored_features, candidates, ann)
        != encoder.encode(features[user_id], candidates, ann)
    ).nnz == 0


def test_publish_never_clobbers_online_user_state(
    redis_client: redis.Redis, versions: list[Bundle]
) -> None:
    histories, features = _seed(versions[0])
    online_user, fresh_user = list(histories)[:2]
    redis_client.lpush(LAYOUT.user_events_key(online_user), "live-item")
    redis_client.hset(LAYOUT.user_features_key(online_user), mapping={"age": "99"})
    result = publish_bundle(
        redis_client, versions[0], user_histories=histories, user_features=features
    )
    assert result.users_skipped == 1 and result.users_seeded == len(histories) - 1
    assert redis_client.lrange(LAYOUT.user_events_key(online_user), 0, -1) == [b"live-item"]
    assert redis_client.hgetall(LAYOUT.user_features_key(online_user)) == {b"age": b"99"}
    assert redis_client.llen(LAYOUT.user_events_key(fresh_user)) == min(
        200, len(histories[fresh_user])
    )
    # publishing again seeds nobody: everyone has an events list now
    again = publish_bundle(
        redis_client, versions[1], user_histories=histories, user_features=features
    )
    assert again.users_seeded == 0


def test_retention_deletes_old_versions_but_never_the_active_one(
    redis_client: redis.Redis, versions: list[Bundle]
) -> None:
    for bundle in versions:
        publish_bundle(redis_client, bundle, retention=2)
    v0, v1, v2 = (b.version for b in versions)
    assert published_versions(redis_client) == [v2, v1]
    assert _version_keys(redis_client, v0) == []
    assert _version_keys(redis_client, v1) and _version_keys(redis_client, v2)
    # rolling back to v1 makes it the newest publish; v2 stays as the previous one
    publish_bundle(redis_client, versions[1], retention=2)
    assert active_version(redis_client) == v1 and published_versions(redis_client) == [v1, v2]
    # the active version survives even a GC that would keep only an older one
    redis_client.zadd(LAYOUT.versions_key(), {v2: 1e12})
    assert gc_versions(redis_client, retention=1) == []
    assert _version_keys(redis_client, v1)
    with pytest.raises(ValueError):
        gc_versions(redis_client, retention=0)


def test_concurrent_reader_never_sees_a_mixed_version(
    redis_client: redis.Redis, versions: list[Bundle]
) -> None:
    """A reader that resolves `active` once per request always gets one complete version."""
    expected = {b.version: b.input_vectors for b in versions}
    sample = [0, 1, len(versions[0].item_ids) // 2, len(versions[0].item_ids) - 1]
    item_ids = [versions[0].item_ids[i] for i in sample]
    dim = versions[0].dim
    publish_bundle(redis_client, versions[0], retention=3)
    stop = threading.Event()
    seen: dict[str, int] = {}
    problems: list[str] = []
    client = redis.Redis.from_url(_url(redis_client))  # the reader's own connection

    def read_forever() -> None:
        while not stop.is_set():
            version = client.get(LAYOUT.active_key()).decode()
            got, found = read_vectors(client, version, item_ids, dim)
            meta_dim = client.hget(LAYOUT.meta_key(version), "dim")
            if not found.all() or meta_dim is None:
                problems.append(f"{version}: incomplete")
            elif not np.array_equal(got, expected[version][sample]):
                problems.append(f"{version}: vectors of another version")
            seen[version] = seen.get(version, 0) + 1

    thread = threading.Thread(target=read_forever)
    thread.start()
    try:
        for bundle in (versions[1], versions[2], versions[0], versions[1]):
            publish_bundle(
                redis_client, bundle, retention=3, batch_size=7
            )  # small batches: a slow publish
    finally:
        stop.set()
        thread.join(10)
    assert problems == []
    assert len(seen) >= 2, seen  # the reader ran across flips


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_cli_publish_and_gc(
    redis_client: redis.Redis, trained: TrainResult, tmp_path: Path
) -> None:
    url = _url(redis_client)
    bundles = trained.bundle.parent
    run = [sys.executable, "-m", "recserve.training"]
    result = subprocess.run([*run, "publish", "--bundles", str(bundles), "--redis-url", url],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"published {trained.bundle.name}" in result.stdout
    assert active_version(redis_client) == trained.bundle.name
    bundle = load_bundle(trained.bundle, parts=set())
    assert redis_client.exists(LAYOUT.user_events_key(next(iter_user_seed(bundle))[0]))

    result = subprocess.run([*run, "gc", "--bundles", str(bundles), "--keep", "1", "--redis-url", url],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert trained.bundle.is_dir()  # the active version is protected

    result = subprocess.run([*run, "publish", "--bundles", str(tmp_path), "--redis-url", url],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert (
        result.returncode == 2
        and result.stderr.startswith("error:")
        and "no bundle" in result.stderr
    )
    result = subprocess.run([*run, "publish", "--bundles", str(bundles), "--redis-url", "redis://127.0.0.1:1/0"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 2 and "Redis" in result.stderr and "Traceback" not in result.stderr


def test_cli_publish_takes_the_password_from_the_environment(
    trained: TrainResult, tmp_path: Path
) -> None:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", "s3cret", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port, password="s3cret")
        wait_for_redis(client)
        run = [sys.executable, "-m", "recserve.training", "publish", "--bundles", str(trained.bundle.parent),
               "--version", trained.bundle.name, "--redis-url", f"redis://:wrong@127.0.0.1:{port}/0"]  # fmt: skip
        env = {**os.environ, "RECSERVE_REDIS_PASSWORD": "s3cret"}
        result = subprocess.run(run, capture_output=True, text=True, check=False, env=env)
        assert result.returncode == 0, result.stderr
        assert active_version(client) == trained.bundle.name
        env["RECSERVE_REDIS_PASSWORD"] = "nope"
        result = subprocess.run(run, capture_output=True, text=True, check=False, env=env)
        assert result.returncode == 2 and result.stderr.startswith("error: Redis:")
    finally:
        server.terminate()
        server.wait(10)
