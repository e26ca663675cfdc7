"""The Celery side of bench/peers.py: SQS transport, S3 result backend.

The worker runs ``celery -A peers_apps.celery_app worker``; the client
(bench/peers.py) imports the same app. Queue, bucket and endpoint come from
the environment that bench/peers.py sets.
"""

import os
import time
from urllib.parse import urlparse

from celery import Celery

_endpoint = os.environ["PEERS_ENDPOINT"]
_queue = os.environ["PEERS_QUEUE"]

app = Celery("peers")
app.conf.update(
    broker_url=f"sqs://test:test@{urlparse(_endpoint).netloc}",
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "wait_time_seconds": 20,
        "predefined_queues": {_queue: {"url": f"{_endpoint}/123456789012/{_queue}"}},
    },
    task_default_queue=_queue,
    result_backend="s3",
    s3_bucket=os.environ["PEERS_BUCKET"],
    s3_endpoint_url=_endpoint,
    s3_access_key_id="test",
    s3_secret_access_key="test",
    s3_region="us-east-1",
    worker_hijack_root_logger=False,
)


@app.task
def noop() -> None:
    """The throughput task: nothing."""


@app.task
def stamp(path: str) -> None:
    """The latency probe: its first line writes the time it started."""
    with open(path, "w") as f:
        f.write(repr(time.time()))
