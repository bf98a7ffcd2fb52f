"""The ways a follow-up leaves LeadOps: email over SMTP, SMS and WhatsApp through Twilio's Messages API.

Each channel turns one message into a `SendOutcome`; what that outcome means for the follow-up (retry later, fail,
mark the address bounced) is decided by core.followups, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

OutcomeKind = Literal["sent", "retry", "bounced", "failed", "unreachable"]


@dataclass(frozen=True)
class SendOutcome:
    """How one send attempt ended.

    sent: accepted by the server. retry: a temporary refusal (SMTP 4xx, HTTP 429/5xx), try again later.
    bounced: the address is permanently bad (SMTP 5xx for the recipient): never contact it again.
    failed: this message cannot be sent (bad number, a permanent error unrelated to the address).
    unreachable: the server itself could not be reached or refused us: nothing about this message, stop the pass
    for this channel and try again on a later pass.
    """

    kind: OutcomeKind
    detail: str = ""
    provider_id: str | None = None  # Twilio's message SID, the SMTP queue id where the server gives one
    code: int | None = None  # the SMTP reply code or HTTP status


@dataclass(frozen=True)
class OutgoingEmail:
    """One email ready to go: a follow-up to a lead, or the founders' digest to a user."""

    to: str
    subject: str
    text: str  # the plain-text part (a follow-up's includes its unsubscribe link)
    html: str  # the HTML part; its images are referenced as `cid:<content id>`
    message_id: str  # stable across retries: `<follow-up id@domain>`
    # For the List-Unsubscribe header (RFC 8058 one-click POSTs to the same URL). None, given explicitly so no
    # follow-up goes out without one by mistake, for internal mail such as the digest: users turn it off on their
    # account page instead.
    unsubscribe_url: str | None
    headers: dict[str, str] = field(default_factory=dict)  # extra headers, e.g. X-LeadOps-Follow-Up
    images: dict[str, bytes] = field(default_factory=dict)  # content id (no brackets) -> PNG bytes, shown inline
