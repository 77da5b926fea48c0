"""``Idempotency-Key`` on the POSTs that create or pay: the first request with a key runs and its answer is
kept; a retry with the same key and body gets that answer again and does nothing; the same key with another
body is a 409. A refused request keeps nothing, so it may be retried as it was.

A running request owns its row (the service instance's name). A process killed mid-request leaves its row
unanswered; one service at a time holds the data directory, so a row owned by another instance is a dead one's,
and its retry takes the row over and runs again. Running again creates nothing twice because every ``run`` is
itself idempotent on the chain and in the store: a relayed transaction is found by its hash, an envelope is
content-addressed, a second close job is refused by the job table (409), and every transaction of the
coordinator's key is found in the coordinator's outbox under the request's key (writer.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from .errors import conflict
from .service import Service


def once(
    service: Service,
    caller: str,
    key: str | None,
    route: str,
    body: bytes,
    run: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """`run()`'s answer, or the answer kept for (`caller`, `key`).

    Raises:
        ApiError: 409 when the key was used with another request, or its first request is still running in this
            process.
    """
    if key is None:
        return run()
    request_hash = hashlib.sha256(route.encode() + b"\0" + body).hexdigest()
    with service.db.transaction() as db:
        row = db.execute("SELECT * FROM idempotency WHERE caller = ? AND key = ?", (caller, key)).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO idempotency (caller, key, route, request_hash, owner) VALUES (?, ?, ?, ?, ?)",
                (caller, key, route, request_hash, service.instance),
            )
        elif row["request_hash"] == request_hash and row["body"] is None and row["owner"] != service.instance:
            db.execute("UPDATE idempotency SET owner = ? WHERE caller = ? AND key = ?", (service.instance, caller, key))
            row = None  # its process died mid-request: this one runs it again
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
        db.execute(
            "UPDATE idempotency SET status = 200, body = ? WHERE caller = ? AND key = ?",
            (json.dumps(answer), caller, key),
        )
    return answer
