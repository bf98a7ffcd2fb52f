"""Email over SMTP (follow-ups, the digest): the MIME message, and one kept connection that turns each send into a
SendOutcome."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate, getaddresses
from types import TracebackType

from core.channels import OutcomeKind, OutgoingEmail, SendOutcome
from core.config import Settings
from core.errors import LeadOpsError

__all__ = ["ChannelNotConfigured", "SmtpMailer", "build_message", "not_configured_reason"]

# Headers build_message writes itself: extra headers may not replace them, nor add recipients the envelope lacks.
_MANAGED_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
    "mime-version", "content-type", "content-transfer-encoding", "resent-to", "resent-cc", "resent-bcc",
})
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII but ':'
_ENHANCED_STATUS = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_QUEUE_ID = re.compile(r"(?:queued as|id=)\s*<?([^\s>]+)", re.IGNORECASE)
# Enhanced status subjects (RFC 3463) that blame the system, protocol, content or policy, not the mailbox.
_NOT_THE_ADDRESS = frozenset({3, 5, 6, 7})
_MAX_SERVER_TEXT = 300
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ChannelNotConfigured(LeadOpsError):
    """A channel lacks the settings it needs; `reason` names them."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _MailPolicy(EmailPolicy):
    """CRLF lines, 7-bit bodies, and a few headers written exactly as given."""

    # The stdlib folder RFC 2047-encodes a long unbreakable header (a long unsubscribe URL), which breaks it.
    _verbatim = frozenset({"message-id", "list-unsubscribe", "list-unsubscribe-post"})

    def fold(self, name: str, value: str) -> str:
        """One header line, verbatim for the URL and id headers."""
        if name.lower() in self._verbatim:
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        """One header line as bytes, verbatim for the URL and id headers."""
        if name.lower() in self._verbatim:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


class _HeaderClasses(HeaderRegistry):
    """The stdlib registry, but each header class is built once instead of on every lookup."""

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        # HeaderRegistry makes a new class with type() per header per message: most of build_message's time.
        key = name.lower()
        if key not in self._built:
            self._built[key] = super().__getitem__(name)
        return self._built[key]


# 7-bit bodies (quoted-printable for non-ASCII text) go through every server, 8BITMIME or not.
_POLICY = _MailPolicy(linesep="\r\n", cte_type="7bit", header_factory=_HeaderClasses())


def not_configured_reason(settings: Settings) -> str | None:
    """Why email cannot be sent with these settings, or None when it can."""
    missing = [name for name, value in (("SMTP_HOST", settings.smtp_host), ("MAIL_FROM", settings.mail_from))
               if not value]
    if missing:
        return f"{' and '.join(missing)} not set: email follow-ups cannot be sent"
    try:
        _address("MAIL_FROM", settings.mail_from or "")
    except ValueError as exc:
        return str(exc)
    return None


def build_message(email: OutgoingEmail, *, mail_from: str) -> EmailMessage:
    """The MIME message of one email: text and HTML (with its inline images), one-click unsubscribe, its Message-ID."""
    _address("to", email.to)
    _address("mail_from", mail_from)
    _one_line("subject", email.subject)
    _bracketed_token("message_id", email.message_id)
    if email.unsubscribe_url is not None:
        _bracketed_token("unsubscribe_url", f"<{email.unsubscribe_url}>")
    for content_id, image in email.images.items():
        _inline_png(content_id, image)
    message = EmailMessage(policy=_POLICY)
    message["From"] = mail_from
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = email.message_id
    if email.unsubscribe_url is not None:
        message["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058 one-click
    for name, value in email.headers.items():
        _extra_header(name, value)
        message[name] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    if email.images:
        # multipart/alternative(text, multipart/related(html, images)): clients that show the HTML find each
        # `cid:` reference in the same related part; text-only clients never see the images as attachments.
        html = message.get_payload()[1]
        for content_id, image in email.images.items():
            html.add_related(image, maintype="image", subtype="png", cid=f"<{content_id}>", disposition="inline",
                             filename=f"{content_id.partition('@')[0]}.png")
        html.set_param("type", "text/html")  # RFC 2387: the related part names its root's type
    return message


def _one_line(field: str, value: str) -> None:
    # A CR or LF would let a value start a header of its own (header injection).
    if "\r" in value or "\n" in value:
        raise ValueError(f"{field}: line breaks are not allowed in a header")


def _address(field: str, value: str) -> str:
    """The bare address of a one-address header value; ValueError naming the field otherwise."""
    _one_line(field, value)
    parsed = getaddresses([value])
    if len(parsed) != 1 or "@" not in parsed[0][1] or any(c.isspace() for c in parsed[0][1]):
        raise ValueError(f"{field}: not a single email address: {value!r}")
    return parsed[0][1]


def _bracketed_token(field: str, value: str) -> None:
    _one_line(field, value)
    inner = value[1:-1]
    if not (value.startswith("<") and value.endswith(">")) or not inner or not value.isascii() \
            or any(c.isspace() or c in "<>" for c in inner) or len(value) > 900:
        raise ValueError(f"{field}: must be ASCII without spaces or angle brackets: {value!r}")


def _inline_png(content_id: str, image: bytes) -> None:
    _bracketed_token(f"images[{content_id!r}]", f"<{content_id}>")
    if not image.startswith(_PNG_SIGNATURE):
        raise ValueError(f"images[{content_id!r}]: not a PNG image")


def _extra_header(name: str, value: str) -> None:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"headers: {name!r} is not a header name")
    if name.lower() in _MANAGED_HEADERS:
        raise ValueError(f"headers: {name} is set by LeadOps and cannot be given")
    _one_line(f"headers[{name}]", value)


class _ConnectionLost(Exception):
    """The connection is gone or the server is closing it; `repeatable` when the message had not gone out yet."""

    def __init__(self, outcome: SendOutcome, *, repeatable: bool) -> None:
        self.outcome = outcome
        self.repeatable = repeatable
        super().__init__(outcome.detail)


class SmtpMailer:
    """Sends follow-ups over one SMTP connection opened on first send and kept for the pass; not thread-safe."""

    def __init__(self, settings: Settings, *, timeout_s: float = 10.0, tls_context: ssl.SSLContext | None = None):
        reason = not_configured_reason(settings)
        if reason:
            raise ChannelNotConfigured(reason)
        self._host = settings.smtp_host or ""
        self._port = settings.smtp_port
        self._username = settings.smtp_username or None
        self._password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
        self._starttls = settings.smtp_starttls
        self._mail_from = settings.mail_from or ""
        self._envelope_from = _address("MAIL_FROM", self._mail_from)
        self._timeout_s = timeout_s
        self._tls_context = tls_context  # None: the system's trusted CAs
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def send(self, email: OutgoingEmail) -> SendOutcome:
        """Send one follow-up; every result, an unusable message included, comes back as an outcome."""
        try:
            message = build_message(email, mail_from=self._mail_from)
        except ValueError as exc:
            return SendOutcome("failed", str(exc))
        return self._deliver(message, [_address("to", email.to)])

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _deliver(self, message: EmailMessage, recipients: list[str]) -> SendOutcome:
        """Send to these envelope recipients, on a fresh connection once if the kept one went stale."""
        reused = self._smtp is not None
        try:
            return self._transaction(self._connection(), message, recipients)
        except _ConnectionLost as lost:
            self._drop()
            # A kept connection the server closed while idle fails on its first command and a new one fixes that;
            # once DATA went out the server may hold the message, and sending it again could deliver it twice.
            if not (reused and lost.repeatable):
                return lost.outcome
        try:
            return self._transaction(self._connection(), message, recipients)
        except _ConnectionLost as lost:
            self._drop()
            return lost.outcome

    def _connection(self) -> smtplib.SMTP:
        """The open connection, or a new one."""
        if self._smtp is None:
            self._smtp = self._open()
        return self._smtp

    def _open(self) -> smtplib.SMTP:
        """Connect, EHLO, STARTTLS when required, log in when a username is set; unusable raises _ConnectionLost."""
        try:
            # Connecting in the constructor also records the host name STARTTLS checks the certificate against.
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._lost_while_opening(exc) from exc
        try:
            smtp.ehlo()
            if self._starttls:
                if not smtp.has_extn("starttls"):
                    raise _ConnectionLost(self._unreachable(
                        "does not offer STARTTLS and SMTP_STARTTLS is true: not sending in clear text"),
                        repeatable=False)
                smtp.starttls(context=self._tls_context or ssl.create_default_context())
                smtp.ehlo()
            if self._username:
                smtp.login(self._username, self._password)
        except _ConnectionLost:
            smtp.close()
            raise
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise self._lost_while_opening(exc) from exc
        return smtp

    def _lost_while_opening(self, exc: smtplib.SMTPException | OSError) -> _ConnectionLost:
        """The outcome of a connection that could not be opened, saying which step failed."""
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            detail = f"refused the login of {self._username}: {exc.smtp_code} {_text(exc.smtp_error)}"
            outcome = self._unreachable(detail, exc.smtp_code)
        elif isinstance(exc, smtplib.SMTPNotSupportedError):
            hint = "" if self._starttls else " (servers often offer AUTH only after STARTTLS)"
            outcome = self._unreachable(f"cannot log in: {exc}{hint}")
        elif isinstance(exc, smtplib.SMTPResponseException):  # greeting, EHLO or STARTTLS refused
            outcome = self._unreachable(f"refused the session: {exc.smtp_code} {_text(exc.smtp_error)}",
                                        exc.smtp_code)
        elif isinstance(exc, OSError):  # refused, timed out, unknown host, TLS handshake or certificate
            outcome = self._unreachable(f"could not be reached: {_describe(exc)}")
        else:  # closed during the greeting, no usable AUTH mechanism
            outcome = self._unreachable(f"could not be used: {_describe(exc)}")
        return _ConnectionLost(outcome, repeatable=False)

    def _transaction(self, smtp: smtplib.SMTP, message: EmailMessage, recipients: list[str]) -> SendOutcome:
        """MAIL, RCPT and DATA for one message; a refusal becomes an outcome, a lost connection raises."""
        international = not all(address.isascii() for address in (self._envelope_from, *recipients))
        if international and not smtp.has_extn("smtputf8"):
            return SendOutcome("failed", "the address is not ASCII and the SMTP server does not support SMTPUTF8")
        payload = message.as_bytes(policy=message.policy.clone(utf8=True)) if international else message.as_bytes()
        stage = "MAIL"
        try:
            code, reply = smtp.mail(self._envelope_from, ["SMTPUTF8", "BODY=8BITMIME"] if international else [])
            self._check_alive(code, reply, stage)
            if code // 100 != 2:
                # The sender is the same for every message: a refusal is our setup, so stop the pass, blame no one.
                outcome = _refusal("MAIL FROM", code, reply, permanent="unreachable")
                if outcome.kind == "unreachable":
                    outcome = self._unreachable(outcome.detail, code)
                return self._abandon(smtp, outcome)
            stage = "RCPT"
            refused: dict[str, tuple[int, bytes]] = {}
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                self._check_alive(code, reply, stage)
                if code // 100 != 2:
                    refused[recipient] = (code, reply)
            if refused:
                # All or nothing: a retry then reaches every recipient once, and nobody twice.
                return self._abandon(smtp, _recipients_refused(refused))
            stage = "DATA"
            code, reply = smtp.data(payload)
        except smtplib.SMTPDataError as exc:  # the DATA command itself was refused (not 354)
            self._check_alive(exc.smtp_code, exc.smtp_error, stage)
            return self._abandon(smtp, _refusal("DATA", exc.smtp_code, exc.smtp_error, permanent="bounced"))
        except smtplib.SMTPServerDisconnected as exc:
            raise _ConnectionLost(self._unreachable(f"closed the connection at {stage}: {_describe(exc)}"),
                                  repeatable=stage != "DATA") from exc
        self._check_alive(code, reply, stage)
        if code // 100 != 2:
            return _refusal("the message", code, reply, permanent="bounced")
        match = _QUEUE_ID.search(_text(reply))
        return SendOutcome("sent", _text(reply), provider_id=match.group(1)[:100] if match else None, code=code)

    def _check_alive(self, code: int, reply: bytes | str, stage: str) -> None:
        """Raise when the reply says the server is closing the connection (421) or makes no sense here (1xx, 3xx)."""
        if code == 421 or code // 100 not in (2, 4, 5):
            # 421 is the server refusing service for now, not this message: stop the pass, keep the message queued.
            raise _ConnectionLost(self._unreachable(f"answered {stage} with {code} {_text(reply)}", code),
                                  repeatable=stage != "DATA")

    def _abandon(self, smtp: smtplib.SMTP, outcome: SendOutcome) -> SendOutcome:
        """Reset the half-done transaction so the connection serves the next message, then return the outcome."""
        try:
            code, _reply = smtp.rset()
            if code // 100 != 2:
                self._drop()
        except (smtplib.SMTPException, OSError):
            self._drop()
        return outcome

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _unreachable(self, what: str, code: int | None = None) -> SendOutcome:
        return SendOutcome("unreachable", f"SMTP server {self._host}:{self._port} {what}", code=code)


def _refusal(what: str, code: int, reply: bytes | str, *, permanent: OutcomeKind) -> SendOutcome:
    """A 4xx is a retry; a 5xx is `permanent`, or failed when its enhanced status blames content or policy."""
    text = _text(reply)
    if code // 100 == 4:
        return SendOutcome("retry", f"{what} deferred: {code} {text}", code=code)
    kind: OutcomeKind = permanent
    status = _ENHANCED_STATUS.match(text)
    if permanent == "bounced" and status and int(status.group(2)) in _NOT_THE_ADDRESS:
        # e.g. 554 5.7.1 spam rejection or relay denied: the message or our setup, the address may be fine.
        kind = "failed"
    return SendOutcome(kind, f"{what} refused: {code} {text}", code=code)


def _recipients_refused(refused: dict[str, tuple[int, bytes]]) -> SendOutcome:
    """One outcome for the refused recipients: a permanent refusal outweighs a temporary one."""
    address, (code, reply) = max(refused.items(), key=lambda item: item[1][0] // 100)
    outcome = _refusal(f"recipient {address}", code, reply, permanent="bounced")
    if len(refused) == 1:
        return outcome
    others = "; ".join(f"{a}: {c} {_text(r)}" for a, (c, r) in refused.items() if a != address)
    return SendOutcome(outcome.kind, f"{outcome.detail}; also {others}", code=outcome.code)


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:_MAX_SERVER_TEXT]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
