"""``Idempotency-Key`` on the POSTs that create or pay: the first request with a key runs and its answer is
kept; a retry with the same key and body gets that answer again and does nothing; the same key with another
body is a 409. A refused request keeps nothing, so it may be retried as it was."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from .errors import conflict
from .service import Service


def once(service: Service, caller: str, key: str | None, route: str, body: bytes,
         run: Callable[[], dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """`run()`'s answer, or the answer kept for (`caller`, `key`).

    Raises:
        ApiError: 409 when the key was used with another request, or its first request is still running.
    """
    if key is None:
        return run()
    request_hash = hashlib.sha256(route.encode() + b"\0" + body).hexdigest()
    with service.db.transaction() as db:
        row = db.execute("SELECT * FROM idempotency WHERE caller = ? AND key = ?", (caller, key)).fetchone()
        if row is None:
            db.execute("INSERT INTO idempotency (caller, key, route, request_hash) VALUES (?, ?, ?, ?)",
                       (caller, key, route, request_hash))  # fmt: skip
    if row is not None:
        if row["request_hash"] != request_hash:
            raise conflict(f"Idempotency-Key {key!r} was used for another request", code="IdempotencyKeyReused")
        if row["body"] is None:
            raise conflict(f"the request with Idempotency-Key {key!r} is still running", code="InProgress")
        return json.loads(row["body"])
    try:
        answer = run()
    except BaseException:
        with service.db.transaction() as db:
            db.execute("DELETE FROM idempotency WHERE caller = ? AND key = ?", (caller, key))
        raise
    with service.db.transaction() as db:
        db.execute("UPDATE idempotency SET status = 200, body = ? WHERE caller = ? AND key = ?",
                   (json.dumps(answer), caller, key))  # fmt: skip
    return answer
