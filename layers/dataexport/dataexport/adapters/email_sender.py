"""Delivery emails through SES: a text and an HTML body, never an attachment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from dataexport.adapters.aws_clients import ses_client
from dataexport.delivery import SendResult

logger = Logger(child=True)

# SES answers these when the message itself is refused: sending it again changes nothing.
_FINAL_ERRORS: Final = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExistException",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidParameterValue",
    }
)


@dataclass(frozen=True)
class EmailMessage:
    to: list[str]
    subject: str
    text: str
    html: str


class EmailSender:
    """Sends from the deployment's sender address (a verified SES identity)."""

    def __init__(self, sender: str, region: str) -> None:
        self._sender = sender
        self._client = ses_client(region)

    def send(self, message: EmailMessage) -> SendResult:
        """Send once: status 200 when SES took it, else the class of its error (never raised);
        a refused message is final, anything else worth retrying."""
        try:
            self._client.send_email(
                Source=self._sender,
                Destination={"ToAddresses": message.to},
                Message={
                    "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": message.text, "Charset": "UTF-8"},
                        "Html": {"Data": message.html, "Charset": "UTF-8"},
                    },
                },
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            logger.warning("Email not sent", extra={"error": code})
            return SendResult(error=code, final=code in _FINAL_ERRORS)
        except BotoCoreError as exc:
            logger.warning("Email not sent", extra={"error": type(exc).__name__})
            return SendResult(error=type(exc).__name__)
        logger.info("Email sent", extra={"recipients": len(message.to)})
        return SendResult(status_code=200)
