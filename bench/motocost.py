"""What each kind of request costs moto_server's CPU, by queue depth.

    .venv-peers/bin/python bench/motocost.py [--depths 200,1000,2000] [--calls 40]

Starts a moto_server of its own on a free loopback port and, for each depth,
fills a fresh queue to that depth (at least what the calls below take) and times (moto's CPU from /proc, user and
system, per call) the requests a task's message meets: SendMessageBatch of
ten, ReceiveMessage of one and of ten, ChangeMessageVisibility, DeleteMessage,
DeleteMessageBatch of ten, each with and without message attributes where
they apply; and the S3 requests of a task (PUT, PUT with If-None-Match, GET,
HEAD) at the bucket's size. Serial calls from one client: the emulator's own
cost per request, without the load of a peer run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3

ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
ATTRS = {"taskiq_id": {"DataType": "String", "StringValue": "0190f3c2-6a4b-7c1d-9e2f-3a4b5c6d7e8f"},
         "taskiq_priority": {"DataType": "String", "StringValue": "0"}}
BODY = "x" * 600


def cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="200,1000,2000")
    p.add_argument("--calls", type=int, default=40)
    args = p.parse_args()
    os.environ.update(ENV)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    moto_bin = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    moto = subprocess.Popen([moto_bin, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read(1)
                break
            except OSError:
                time.sleep(0.1)
        sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1")
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")

        def each(what: str, depth: int, n: int, call: Callable[[int], object]) -> None:
            c0 = cpu(moto.pid)
            for i in range(n):
                call(i)
            ms = (cpu(moto.pid) - c0) * 1000 / n
            print(f"{depth:6d} {ms:8.2f} ms  {what}", flush=True)

        print(" depth  moto CPU per call")
        for depth in [int(d) for d in args.depths.split(",")]:
            for with_attrs in (False, True):
                q = sqs.create_queue(QueueName=f"mc-{depth}-{int(with_attrs)}-{time.time_ns()}")["QueueUrl"]
                extra = {"MessageAttributes": ATTRS} if with_attrs else {}
                tag = "with 2 attributes" if with_attrs else "no attributes"
                for k in range(0, depth, 10):
                    sqs.send_message_batch(QueueUrl=q, Entries=[
                        {"Id": str(j), "MessageBody": BODY, **extra} for j in range(min(10, depth - k))])
                calls = max(4, args.calls // 4)
                got: list[str] = []
                recv_kw = {"MessageAttributeNames": ["All"], "MessageSystemAttributeNames": ["ApproximateReceiveCount"]}

                def recv(n: int) -> None:
                    ms = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=n, VisibilityTimeout=600,
                                             WaitTimeSeconds=0, **recv_kw).get("Messages", [])
                    got.extend(m["ReceiptHandle"] for m in ms)
                each(f"ReceiveMessage of 1, {tag}", depth, calls, lambda i: recv(1))
                each(f"ReceiveMessage of 10, {tag}", depth, calls, lambda i: recv(10))
                each(f"ChangeMessageVisibility, {tag}", depth, calls,
                     lambda i: sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=got[i], VisibilityTimeout=600))
                each(f"DeleteMessage, {tag}", depth, calls,
                     lambda i: sqs.delete_message(QueueUrl=q, ReceiptHandle=got.pop()))
                each(f"DeleteMessageBatch of 10, {tag}", depth, max(2, calls // 10), lambda i: sqs.delete_message_batch(
                    QueueUrl=q, Entries=[{"Id": str(j), "ReceiptHandle": got.pop()} for j in range(10)]))
                each(f"SendMessageBatch of 10, {tag}", depth, calls, lambda i: sqs.send_message_batch(
                    QueueUrl=q, Entries=[{"Id": str(j), "MessageBody": BODY, **extra} for j in range(10)]))
            b = f"mc-{depth}-{time.time_ns()}"
            s3.create_bucket(Bucket=b)
            for k in range(depth):
                s3.put_object(Bucket=b, Key=f"t/{k}/result.json", Body=b"{}")
            each("S3 PUT", depth, args.calls, lambda i: s3.put_object(Bucket=b, Key=f"p/{i}", Body=BODY.encode()))
            each("S3 PUT If-None-Match: *", depth, args.calls, lambda i: s3.put_object(
                Bucket=b, Key=f"c/{i}", Body=BODY.encode(), IfNoneMatch="*"))
            each("S3 GET", depth, args.calls, lambda i: s3.get_object(Bucket=b, Key=f"p/{i}")["Body"].read())
            each("S3 HEAD", depth, args.calls, lambda i: s3.head_object(Bucket=b, Key=f"p/{i}"))
    finally:
        moto.terminate()
        moto.wait(timeout=30)


if __name__ == "__main__":
    main()
