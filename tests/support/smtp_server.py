"""A real in-process SMTP server (aiosmtpd) for the email tests: scripted refusals, STARTTLS, AUTH, down and up.

    with SmtpServer() as server:
        server.script_rcpt("dana@example.com", [451, 250])  # greylist once, then accept
        server.refuse_rcpt("gone@example.com", 550)          # always refuse
        ... connect to server.host:server.port ...
        server.messages[0]["Subject"], server.deliveries[0].rcpt_tos, server.connections

Facts about aiosmtpd 1.4.6 this relies on (the tests in tests/core/test_channel_email.py exercise them):

- A handler that defines ``handle_MAIL`` / ``handle_RCPT`` must fill ``envelope.mail_from`` /
  ``envelope.rcpt_tos`` itself; the string it returns is the reply line ("451 4.7.1 ...").
- ``Controller.factory()`` runs once per TCP connection (STARTTLS does not call it again); ``Controller.start()``
  opens one connection of its own to check the server, which ``connections`` does not count.
- A stopped Controller closes its event loop, so ``start()`` after ``stop()`` builds a new one on the same port.
- The server does not close the connection after a 421 reply by itself; this one does, as real servers do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import itertools
import socket
import ssl
import tempfile
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["Delivery", "SmtpServer", "REPLY_TEXT"]

Answer = int | tuple[int, str]  # a reply code, or a code with its text

REPLY_TEXT: dict[int, str] = {
    250: "2.0.0 OK",
    421: "4.3.2 Service shutting down, closing transmission channel",
    450: "4.2.1 Mailbox busy, try again later",
    451: "4.7.1 Greylisted, please try again later",
    452: "4.5.3 Too many recipients",
    550: "5.1.1 No such user here",
    552: "5.2.2 Mailbox full",
    553: "5.1.3 Bad recipient address syntax",
    554: "5.7.1 Message rejected as spam",
}


@dataclass
class Delivery:
    """One message the server accepted: the envelope and the raw bytes as received."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    queue_id: str
    mail_options: list[str] = field(default_factory=list)

    @cached_property
    def message(self) -> EmailMessage:
        """The message parsed with the modern email policy."""
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _reply(answer: Answer) -> str:
    code, text = answer if isinstance(answer, tuple) else (answer, REPLY_TEXT.get(answer, "Scripted reply"))
    return f"{code} {text}"


def _code(answer: Answer) -> int:
    return answer[0] if isinstance(answer, tuple) else answer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Handler:
    """aiosmtpd hooks that consult the owner's scripts."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        answer = self.owner._next_answer(self.owner._mail_script)
        if answer is not None and _code(answer) // 100 != 2:
            return self.owner._answer(server, answer)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        answer = self.owner._rcpt_answer(address)
        if answer is not None and _code(answer) // 100 != 2:
            return self.owner._answer(server, answer)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = self.owner._next_answer(self.owner._data_script)
        if answer is not None and _code(answer) // 100 != 2:
            return self.owner._answer(server, answer)
        raw = envelope.original_content or b""
        queue_id = self.owner._record(envelope.mail_from or "", list(envelope.rcpt_tos), raw,
                                      list(envelope.mail_options))
        return f"250 2.0.0 Ok: queued as {queue_id}"


class _Controller(Controller):
    """A Controller whose sessions the owner counts and can cut."""

    def __init__(self, owner: SmtpServer, **kwargs: Any) -> None:
        super().__init__(owner._handler, **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        return _Session(self.owner, self.handler, **self.SMTP_kwargs)


class _Session(SMTP):
    """One client connection, registered with the owner while open."""

    def __init__(self, owner: SmtpServer, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.owner = owner
        owner._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.owner._closed(self)
        super().connection_lost(error)


class SmtpServer:
    """Context manager: an SMTP server on 127.0.0.1, on a free port that stays the same across stop() and start().

    Attributes:
        host, port: where it listens.
        deliveries: every accepted message (envelope and raw bytes); ``messages`` is the parsed messages.
        connections: client connections opened since start (the Controller's own check excluded).
    Options: ``tls=True`` offers STARTTLS with a self-signed certificate for 127.0.0.1 (trust it with
    ``client_tls_context``); ``users={"name": "password"}`` offers AUTH PLAIN/LOGIN, and requires it.
    """

    def __init__(self, *, tls: bool = False, users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or _free_port()
        self.deliveries: list[Delivery] = []
        self.connections = 0
        self._users = dict(users or {})
        self._lock = threading.Lock()
        self._handler = _Handler(self)
        self._mail_script: deque[Answer] = deque()
        self._data_script: deque[Answer] = deque()
        self._rcpt_scripts: dict[str, deque[Answer]] = {}
        self._rcpt_refusals: dict[str, Answer] = {}
        self._sessions: set[_Session] = set()
        self._queue_ids = itertools.count(1)
        self._controller: _Controller | None = None
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None
        self._server_tls: ssl.SSLContext | None = None
        self.client_tls_context: ssl.SSLContext | None = None
        if tls:
            self._make_certificate()

    # -- scripting -------------------------------------------------------------------------------------------
    def script_rcpt(self, address: str, answers: Iterable[Answer]) -> None:
        """Answer the next RCPTs for this address with these codes in turn, then accept."""
        with self._lock:
            self._rcpt_scripts.setdefault(address.lower(), deque()).extend(answers)

    def refuse_rcpt(self, address: str, answer: Answer = 550) -> None:
        """Refuse every RCPT for this address."""
        with self._lock:
            self._rcpt_refusals[address.lower()] = answer

    def script_mail(self, answers: Iterable[Answer]) -> None:
        """Answer the next MAIL FROM commands (any sender) with these codes in turn, then accept."""
        with self._lock:
            self._mail_script.extend(answers)

    def script_data(self, answers: Iterable[Answer]) -> None:
        """Answer the next messages' end of DATA with these codes in turn, then accept."""
        with self._lock:
            self._data_script.extend(answers)

    @property
    def messages(self) -> list[EmailMessage]:
        """The accepted messages, parsed, in arrival order."""
        with self._lock:
            deliveries = list(self.deliveries)
        return [delivery.message for delivery in deliveries]

    @property
    def open_sessions(self) -> int:
        """Client connections open right now."""
        with self._lock:
            return len(self._sessions)

    def drop_connections(self) -> None:
        """Close every open client connection from the server side, as an idle timeout does; keep listening."""
        controller = self._controller
        if controller is None:
            return
        done = threading.Event()

        def close_all() -> None:
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                if session.transport is not None:
                    session.transport.close()
            done.set()

        controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    # -- hooks' helpers (called on the server's thread) ---------------------------------------------------------
    def _next_answer(self, script: deque[Answer]) -> Answer | None:
        with self._lock:
            return script.popleft() if script else None

    def _rcpt_answer(self, address: str) -> Answer | None:
        key = address.lower()
        with self._lock:
            script = self._rcpt_scripts.get(key)
            if script:
                return script.popleft()
            return self._rcpt_refusals.get(key)

    def _answer(self, server: SMTP, answer: Answer) -> str:
        if _code(answer) == 421 and server.transport is not None:
            # 421 means "closing the channel": hang up once the reply is written, as real servers do.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return _reply(answer)

    def _record(self, mail_from: str, rcpt_tos: list[str], raw: bytes, mail_options: list[str]) -> str:
        with self._lock:
            queue_id = f"Q{next(self._queue_ids):06d}"
            self.deliveries.append(Delivery(mail_from, rcpt_tos, raw, queue_id, mail_options))
        return queue_id

    def _opened(self, session: _Session) -> None:
        with self._lock:
            self.connections += 1
            self._sessions.add(session)

    def _closed(self, session: _Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self._users.get(login) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # -- TLS ------------------------------------------------------------------------------------------------------
    def _make_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1 and localhost, and a client context that trusts only it."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self._tls_dir = tempfile.TemporaryDirectory(prefix="smtp-tls-")
        cert_path, key_path = Path(self._tls_dir.name, "cert.pem"), Path(self._tls_dir.name, "key.pem")
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(cert_path, key_path)
        self.client_tls_context = ssl.create_default_context(cafile=str(cert_path))

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> SmtpServer:
        """Listen (again) on the same port."""
        if self._controller is not None:
            return self
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port, "ready_timeout": 5.0}
        if self._server_tls is not None:
            kwargs["tls_context"] = self._server_tls
        if self._users:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self._server_tls is not None)
        controller = _Controller(self, **kwargs)
        with self._lock:
            before = self.connections
        controller.start()
        with self._lock:
            self.connections = before  # the Controller's own start-up check is not a client
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and cut every client connection, as a server going down does."""
        controller = self._controller
        if controller is None:
            return
        self.drop_connections()
        self._controller = None
        controller.stop()

    def close(self) -> None:
        """Stop, and remove the TLS files."""
        self.stop()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
