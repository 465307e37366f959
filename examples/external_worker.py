"""An external task worker for deptflow: archives applications (topic ``archive``).

It asks for work, does it, reports it done — or failed, counting the retries down — and asks again;
when there is nothing to do it waits a few seconds. Plain ``urllib``, nothing to install.

    DEPTFLOW_URL=http://127.0.0.1:5000 DEPTFLOW_TOKEN=dft_... python examples/external_worker.py

The token is an API token (*API tokens* in the web app) of a user whose roles grant ``external_worker``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

TOPIC = "archive"
LOCK_SECONDS = 60
RETRIES = 3


def call(base_url: str, token: str, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` as JSON to ``/api/v1/external-tasks/<path>``; the answer's JSON."""
    request = urllib.request.Request(
        f"{base_url}/api/v1/external-tasks/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def archive(variables: dict[str, Any]) -> dict[str, Any]:
    """The work itself: here, pretend to file the application away. Returns the variables to send back."""
    print(f"archiving “{variables.get('title')}”")
    return {"archived": True}


def work_once(base_url: str, token: str, worker_id: str, max_tasks: int = 10) -> int:
    """Fetch and lock up to ``max_tasks`` tasks of :data:`TOPIC`, do each; how many were completed."""
    tasks = call(base_url, token, "fetch-and-lock", {"worker_id": worker_id, "topics": [TOPIC],
                                                     "max_tasks": max_tasks, "lock_duration": LOCK_SECONDS})
    completed = 0
    for task in tasks:
        try:
            variables = archive(task["variables"])
        except Exception as exc:  # noqa: BLE001 - any failure of the work is reported, the worker goes on
            retries = (task["retries"] if task["retries"] is not None else RETRIES) - 1
            call(base_url, token, f"{task['id']}/failure", {"worker_id": worker_id, "message": str(exc),
                                                            "retries": max(retries, 0), "retry_after": 60})
            continue
        try:
            call(base_url, token, f"{task['id']}/complete", {"worker_id": worker_id, "variables": variables})
            completed += 1
        except urllib.error.HTTPError as exc:  # 409: the lock expired and another worker took the task
            print(f"task {task['id']}: {json.load(exc).get('detail')}")
    return completed


def main() -> None:
    base_url = os.environ.get("DEPTFLOW_URL", "http://127.0.0.1:5000").rstrip("/")
    token = os.environ["DEPTFLOW_TOKEN"]
    worker_id = os.environ.get("DEPTFLOW_WORKER_ID", f"archive-{socket.gethostname()}-{os.getpid()}")
    while True:
        if not work_once(base_url, token, worker_id):
            time.sleep(5)


if __name__ == "__main__":
    main()
