"""The taskiq-aio-sqs side of bench/peers.py: a broker on SQS with S3 results.

The worker loads it as ``taskiq worker peers_apps.taskiq_app:broker``; the
client (bench/peers.py) imports the same module. Queue, bucket and endpoint
come from the environment that bench/peers.py sets.
"""

import os
import time

from taskiq_aio_sqs import S3Backend, SQSBroker

_endpoint = os.environ["PEERS_ENDPOINT"]
_creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}

broker = SQSBroker(
    endpoint_url=_endpoint,
    sqs_queue_name=os.environ["PEERS_QUEUE"],
    # Its best settings for a burst: receive ten at a time, send in batches
    # of ten (the latency probe skips batching), long polls of 20 s.
    max_number_of_messages=10,
    wait_time_seconds=20,
    enable_batching=True,
    batch_size=10,
    batch_timeout=0.1,
    **_creds,
).with_result_backend(S3Backend(bucket_name=os.environ["PEERS_BUCKET"], endpoint_url=_endpoint, **_creds))


@broker.task()
async def noop() -> None:
    """The throughput task: nothing."""


@broker.task()
async def stamp(path: str) -> None:
    """The latency probe: its first line writes the time it started."""
    with open(path, "w") as f:
        f.write(repr(time.time()))
