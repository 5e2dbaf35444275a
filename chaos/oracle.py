"""What the answers should have been: the offline pipeline per model version, and Redis.

- `Oracle.check` compares every full (not degraded) Recommend answer with what the offline
  pipeline (`recserve.model.recommend`) computes for the same user under the version the
  answer names. A response that mixed versions (or any other wrong answer) differs.
- `verify_writes` looks up every RecordEvents in Redis: an acknowledged write that is not
  there is lost; an unacknowledged one that is there was stored anyway (the client could
  not know: at-least-once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis

from chaos.load import Record
from recserve.model import Bundle, RedisLayout, load_bundle, recommend

LAYOUT = RedisLayout()


def user_state(client: redis.Redis, user_id: str) -> tuple[list[str], dict[str, str]]:
    """Stored events (oldest first) and features of a user."""
    events = [_text(e) for e in client.lrange(LAYOUT.user_events_key(user_id), 0, -1)][::-1]
    features = {
        _text(k): _text(v) for k, v in client.hgetall(LAYOUT.user_features_key(user_id)).items()
    }
    return events, features


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Oracle:
    def __init__(
        self,
        bundle_paths: Mapping[str, Path],
        client: redis.Redis,
        users: Sequence[str],
        k: int = 10,
    ):
        self.k = k
        self.expected: dict[str, dict[str, list[str]]] = {}
        self.popular: dict[str, list[str]] = {}
        states = {user: user_state(client, user) for user in users}
        for version, path in bundle_paths.items():
            bundle = load_bundle(path, parts={"index", "ranker", "vectors"})
            self.expected[version] = {
                user: self._offline(bundle, events, features)
                for user, (events, features) in states.items()
            }
            self.popular[version] = [bundle.item_ids[i] for i in bundle.popular.tolist()]

    def _offline(
        self, bundle: Bundle, events: Sequence[str], features: Mapping[str, str]
    ) -> list[str]:
        history = [bundle.item_index[i] for i in events if i in bundle.item_index]
        return [bundle.item_ids[i] for i, _, _ in recommend(bundle, history, features, self.k)]

    def check(self, records: Iterable[Record]) -> dict[str, Any]:
        """Full answers equal to the offline pipeline's; fallbacks drawn from the same version's
        popular list. `wrong` counts both kinds of mismatch (examples kept)."""
        checked = wrong = fallbacks = 0
        versions: dict[str, int] = {}
        examples: list[dict[str, Any]] = []
        for r in records:
            if r.op != "recommend" or r.code != "OK":
                continue
            versions[r.version] = versions.get(r.version, 0) + 1
            expected = self.expected.get(r.version, {}).get(r.user)
            if r.degraded in (
                "embedding_store_unavailable",
                "candidates_unavailable",
                "cold_start",
            ):
                fallbacks += 1
                ok = r.version in self.popular and set(r.items) <= set(self.popular[r.version])
            elif r.degraded:
                continue  # ranking_unavailable: ANN order, not comparable with the ranked list
            else:
                checked += 1
                ok = expected is not None and r.items == expected
            if not ok:
                wrong += 1
                if len(examples) < 5:
                    examples.append(
                        {
                            "i": r.i,
                            "user": r.user,
                            "version": r.version,
                            "degraded": r.degraded,
                            "got": r.items,
                            "expected": expected,
                        }
                    )
        return {
            "full_answers_checked": checked,
            "fallbacks_checked": fallbacks,
            "wrong": wrong,
            "versions": versions,
            "examples": examples,
        }


def verify_writes(client: redis.Redis, records: Iterable[Record]) -> dict[str, Any]:
    writes = [r for r in records if r.op == "record"]
    pipe = client.pipeline(transaction=False)
    for r in writes:
        pipe.lrange(LAYOUT.user_events_key(r.user), 0, -1)
    stored = [{_text(e) for e in events} for events in pipe.execute()] if writes else []
    acknowledged = lost = unacknowledged = stored_anyway = 0
    lost_examples: list[str] = []
    for r, have in zip(writes, stored, strict=True):
        if r.code == "OK" and r.accepted == len(r.items):
            acknowledged += 1
            if not set(r.items) <= have:
                lost += 1
                if len(lost_examples) < 5:
                    lost_examples.append(r.user)
        else:
            unacknowledged += 1
            if set(r.items) & have:
                stored_anyway += 1
    return {
        "writes": len(writes),
        "acknowledged": acknowledged,
        "acknowledged_lost": lost,
        "lost_examples": lost_examples,
        "not_acknowledged": unacknowledged,
        "not_acknowledged_but_stored": stored_anyway,
    }
