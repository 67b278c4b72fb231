"""What the delivery tests receive with: a webhook receiver on 127.0.0.1 that checks
signatures, and an SQS queue behind an EventBridge rule for the outcome events."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class ReceivedWebhook:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    timestamp: int | None
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


def signature_is_valid(key: str, header: str, body: bytes, now: float) -> tuple[bool, int | None]:
    """A receiver's check, written from the README alone: t and v1 from the header, v1 =
    hex HMAC-SHA256(key, "<t>.<body>"), t within five minutes."""
    fields = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False, None
    expected = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(now - timestamp) <= SIGNATURE_TOLERANCE_SECONDS
    return fresh and hmac.compare_digest(expected, fields.get("v1", "")), timestamp


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 answering POSTs with `answers` in turn (the last one
    repeats), or 401 when the signature does not verify with `key`."""

    def __init__(self, key: str, answers: list[int]) -> None:
        self.key = key
        self._answers = list(answers)
        self._lock = threading.Lock()
        self._received: list[ReceivedWebhook] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                valid, timestamp = signature_is_valid(
                    receiver.key, self.headers.get("DataExport-Signature", ""), body, time.time()
                )
                status = receiver._next_answer() if valid else 401
                receiver._record(
                    ReceivedWebhook(dict(self.headers), body, valid, timestamp, status)
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/dataexport?team=7"

    def _next_answer(self) -> int:
        with self._lock:
            return self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]

    def _record(self, received: ReceivedWebhook) -> None:
        with self._lock:
            self._received.append(received)

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._lock:
            return list(self._received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class OutcomeEvents:
    """An SQS queue receiving every event of source "dataexport" on the default bus."""

    def __init__(self, runtime: Any, name: str) -> None:
        self._sqs = runtime.boto3_client("sqs")
        events = runtime.boto3_client("events")
        self._queue_url = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        events.put_rule(
            Name=f"{name}-rule",
            EventBusName="default",
            EventPattern=json.dumps({"source": ["dataexport"]}),
        )
        events.put_targets(
            Rule=f"{name}-rule", EventBusName="default", Targets=[{"Id": "q", "Arn": queue_arn}]
        )
        self._seen: list[dict[str, Any]] = []

    def _drain(self, wait_seconds: int) -> int:
        answer = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = answer.get("Messages", [])
        for message in messages:
            self._seen.append(json.loads(message["Body"]))
            self._sqs.delete_message(
                QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return len(messages)

    def for_job(self, job_id: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Every event about `job_id`: waits (with a deadline) for the first, then takes
        whatever else is queued."""
        deadline = time.monotonic() + timeout
        while not self._matching(job_id):
            assert time.monotonic() < deadline, f"no event for {job_id} within {timeout}s"
            self._drain(wait_seconds=1)
        while self._drain(wait_seconds=1):
            pass
        return self._matching(job_id)

    def _matching(self, job_id: str) -> list[dict[str, Any]]:
        return [event for event in self._seen if event.get("detail", {}).get("id") == job_id]
