"""EventBridge on a laptop: fires the rules and Scheduler schedules stored in moto.

moto keeps EventBridge rules and Scheduler schedules but never fires them. `LocalScheduler`
reads them from moto (so it sees what the template declared and what the API created, paused or
deleted since), works out each one's next run with the same evaluator the service uses (EventBridge
cron and rate semantics, the schedule's IANA zone), and at that time invokes the target function
in-process with the event EventBridge would send. `fire(name)` runs one at once.

A schedule first seen while the scheduler runs counts from its creation; one that existed before
the scheduler started counts from then (no backlog of missed runs is replayed).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from dataexport.errors import InvalidRequest
from dataexport.schedule_expressions import next_runs, parse_schedule
from dataexport_local.lambda_dispatch import Invocation
from dataexport_local.template import ACCOUNT_ID, REGION

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ClientFactory = Callable[[str], Any]
# A client for a service (second) signed as a session of a role (first).
RoleClientFactory = Callable[[str, str], Any]
# Invokes a function (by ARN) with an event: in-process, or through the Lambda API.
Invoker = Callable[[str, Any], Invocation]
POLL_SECONDS = 1.0
STATE_MACHINE_ARN_PART = ":states:"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ClockTarget:
    """A rule or a schedule, as read from moto: when it runs and what it invokes."""

    kind: str  # "rule" or "schedule"
    name: str
    group: str | None
    arn: str
    expression: str
    timezone: str
    enabled: bool
    target_arn: str
    target_input: str | None
    # The role EventBridge or Scheduler calls the target as (None: a function's own permission).
    target_role_arn: str | None
    start: datetime | None
    end: datetime | None
    version: str

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.kind, self.group, self.name)


@dataclass(frozen=True)
class Firing:
    """One run the scheduler made: of what, for which scheduled time, and how it went."""

    kind: str
    name: str
    scheduled_time: datetime
    invocation: Invocation | None
    error: str | None = None


class LocalScheduler:
    """Polls moto's rules and schedules and fires each when it is due."""

    def __init__(
        self,
        clients: ClientFactory,
        invoke: Invoker,
        *,
        clock: Clock = _utc_now,
        poll_seconds: float = POLL_SECONDS,
        role_clients: RoleClientFactory | None = None,
    ) -> None:
        self._clients = clients
        self._role_clients = role_clients
        self._invoke = invoke
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._started_at = clock()
        self._due: dict[tuple[str, str | None, str], tuple[str, datetime | None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._firings: list[Firing] = []
        self._workers: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalScheduler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalScheduler:
        self._started_at = self._clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="local-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for worker in list(self._workers):
            worker.join(timeout=60)

    # ------------------------------------------------------------------ what tests and tools use
    @property
    def firings(self) -> list[Firing]:
        with self._lock:
            return list(self._firings)

    def targets(self) -> list[ClockTarget]:
        """Every rule with a schedule expression and every Scheduler schedule, as moto has them."""
        return self._rules() + self._schedules()

    def next_run(self, name: str) -> datetime | None:
        """When the rule or schedule `name` runs next (None: disabled, over, or unknown)."""
        for target in self.targets():
            if target.name == name:
                return self._next_due(target, self._clock())
        return None

    def fire(self, name: str) -> Firing:
        """Run the rule or schedule `name` now, as if it were due; waits for the invocation."""
        for target in self.targets():
            if target.name == name:
                return self._fire(target, self._clock())
        known = ", ".join(sorted(target.name for target in self.targets())) or "none"
        raise KeyError(f"No rule or schedule named {name!r} (known: {known})")

    def tick(self) -> None:
        """Fire whatever is due now (the loop calls this every poll)."""
        now = self._clock()
        seen = set()
        for target in self.targets():
            seen.add(target.key)
            due = self._next_due(target, now)
            if due is not None and due <= now:
                self._start_worker(target, due)
                self._remember(target, after=due)
        with self._lock:
            for key in set(self._due) - seen:
                del self._due[key]  # deleted: forget it

    # ------------------------------------------------------------------ internals
    def _loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.tick()
            except Exception:
                logger.exception("The local scheduler could not read or fire a schedule")

    def _next_due(self, target: ClockTarget, now: datetime) -> datetime | None:
        if not target.enabled:
            return None
        with self._lock:
            known = self._due.get(target.key)
        if known is not None and known[0] == target.version:
            after = known[1]
        else:
            # First seen: from its start (or creation) if later than the scheduler's own; changed
            # (paused and resumed, edited): from now, so no missed run is made up for.
            after = now if known is not None else max(target.start or now, self._started_at)
            self._remember(target, after=after)
        if after is None:
            return None
        try:
            schedule = parse_schedule(target.expression)
        except InvalidRequest:
            logger.warning("Unreadable expression on %s %s", target.kind, target.name)
            return None
        # A rule's rate counts from when the scheduler first saw it.
        start = target.start or self._started_at
        runs = next_runs(schedule, ZoneInfo(target.timezone), after, 1, start=start)
        if not runs or (target.end is not None and runs[0] > target.end):
            return None
        return runs[0]

    def _remember(self, target: ClockTarget, after: datetime | None) -> None:
        with self._lock:
            self._due[target.key] = (target.version, after)

    def _start_worker(self, target: ClockTarget, scheduled_time: datetime) -> None:
        worker = threading.Thread(
            target=self._fire, args=(target, scheduled_time), name=f"fire-{target.name}"
        )
        self._workers = [thread for thread in self._workers if thread.is_alive()] + [worker]
        worker.start()

    def _fire(self, target: ClockTarget, scheduled_time: datetime) -> Firing:
        event = _event_for(target, scheduled_time)
        try:
            if STATE_MACHINE_ARN_PART in target.target_arn:
                # A state machine target: EventBridge starts an execution, the event its input.
                self._client_for(target, "stepfunctions").start_execution(
                    stateMachineArn=target.target_arn, input=json.dumps(event)
                )
                firing = Firing(target.kind, target.name, scheduled_time, None)
            elif target.target_role_arn is not None and self._role_clients is not None:
                # Scheduler invokes a function as the schedule's role, through the Lambda API.
                answer = self._client_for(target, "lambda").invoke(
                    FunctionName=target.target_arn, Payload=json.dumps(event)
                )
                invocation = Invocation(answer["Payload"].read(), answer.get("FunctionError"))
                firing = Firing(
                    target.kind, target.name, scheduled_time, invocation, invocation.function_error
                )
            else:
                invocation = self._invoke(target.target_arn, event)
                firing = Firing(
                    target.kind, target.name, scheduled_time, invocation, invocation.function_error
                )
        except Exception as exc:
            logger.exception("Could not reach the target of %s %s", target.kind, target.name)
            firing = Firing(target.kind, target.name, scheduled_time, None, str(exc))
        with self._lock:
            self._firings.append(firing)
        logger.info("Fired %s %s for %s", target.kind, target.name, scheduled_time.isoformat())
        return firing

    def _client_for(self, target: ClockTarget, service: str) -> Any:
        if target.target_role_arn is not None and self._role_clients is not None:
            return self._role_clients(target.target_role_arn, service)
        return self._clients(service)

    def _rules(self) -> list[ClockTarget]:
        events = self._clients("events")
        found = []
        for page in events.get_paginator("list_rules").paginate():
            for rule in page["Rules"]:
                expression = rule.get("ScheduleExpression")
                if not expression:
                    continue  # an event pattern rule: nothing to fire on a clock
                for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                    found.append(
                        ClockTarget(
                            kind="rule",
                            name=rule["Name"],
                            group=None,
                            arn=rule["Arn"],
                            expression=expression,
                            timezone="UTC",
                            enabled=rule.get("State") == "ENABLED",
                            target_arn=target["Arn"],
                            target_input=target.get("Input"),
                            target_role_arn=target.get("RoleArn"),
                            start=None,
                            end=None,
                            version=f"{expression}|{rule.get('State')}",
                        )
                    )
        return found

    def _schedules(self) -> list[ClockTarget]:
        scheduler = self._clients("scheduler")
        found = []
        for page in scheduler.get_paginator("list_schedules").paginate():
            for summary in page["Schedules"]:
                schedule = scheduler.get_schedule(
                    Name=summary["Name"], GroupName=summary["GroupName"]
                )
                created = schedule.get("CreationDate")
                start = schedule.get("StartDate")
                # A rate counts from its StartDate, else from when it was created.
                if start is None and isinstance(created, datetime):
                    start = created
                found.append(
                    ClockTarget(
                        kind="schedule",
                        name=schedule["Name"],
                        group=schedule["GroupName"],
                        arn=schedule["Arn"],
                        expression=schedule["ScheduleExpression"],
                        timezone=schedule.get("ScheduleExpressionTimezone") or "UTC",
                        enabled=schedule.get("State") == "ENABLED",
                        target_arn=schedule["Target"]["Arn"],
                        target_input=schedule["Target"].get("Input"),
                        target_role_arn=schedule["Target"].get("RoleArn"),
                        start=start,
                        end=schedule.get("EndDate"),
                        version=str(schedule.get("LastModificationDate")),
                    )
                )
        return found


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_for(target: ClockTarget, scheduled_time: datetime) -> Any:
    """What EventBridge sends the target: a rule's Input or its Scheduled Event; a schedule's
    Input with Scheduler's context attributes filled in."""
    if target.kind == "schedule":
        text = target.target_input or "{}"
        for attribute, value in (
            ("<aws.scheduler.scheduled-time>", _iso(scheduled_time)),
            ("<aws.scheduler.schedule-arn>", target.arn),
            ("<aws.scheduler.execution-id>", str(uuid.uuid4())),
            ("<aws.scheduler.attempt-number>", "1"),
        ):
            text = text.replace(attribute, value)
        return json.loads(text)
    if target.target_input is not None:
        return json.loads(target.target_input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": _iso(scheduled_time),
        "region": REGION,
        "resources": [target.arn],
        "detail": {},
    }
