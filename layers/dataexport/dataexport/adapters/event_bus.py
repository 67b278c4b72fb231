"""Outcome events on the account's default EventBridge bus (source "dataexport")."""

from __future__ import annotations

import json
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from dataexport.adapters.aws_clients import events_client
from dataexport.errors import DeliveryFailed

EVENT_SOURCE: Final = "dataexport"
DEFAULT_BUS: Final = "default"


class EventBus:
    def __init__(self, region: str) -> None:
        self._client = events_client(region)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event; one EventBridge did not take is a DeliveryFailed (retried)."""
        try:
            answer = self._client.put_events(
                Entries=[
                    {
                        "Source": EVENT_SOURCE,
                        "DetailType": detail_type,
                        "Detail": json.dumps(detail, sort_keys=True),
                        "EventBusName": DEFAULT_BUS,
                    }
                ]
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryFailed(
                f"EventBridge did not take the event ({type(exc).__name__})."
            ) from exc
        if answer.get("FailedEntryCount", 0):
            code = answer["Entries"][0].get("ErrorCode", "unknown")
            raise DeliveryFailed(f"EventBridge did not take the event ({code}).")
