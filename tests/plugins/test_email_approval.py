"""Email approval through real SMTP: notifications via a relay (an aiosmtpd peer), replies to
our aiosmtpd server sent with smtplib; every refusal looks exactly like an acceptance."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import ssl
import subprocess
from email.message import EmailMessage

import attrs
import pytest
import trio
from aiosmtpd.controller import Controller

from gateway.testing.gateway import open_gateway, wait_until
from plugins.email_approval.token import make_token, read_token
from tests.gateway.staff.staff_data import STAFF_TOML, write_full_file

SECRET = "an-email-token-secret-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """The SMTP relay the gateway sends notifications through (records each message)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 OK"


@pytest.fixture
def relay():
    handler = Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def config(tmp_path, relay_port: int, listen_port: int) -> str:
    full = write_full_file(tmp_path / "4a.json")
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "c1.toml").write_text(
        'id = "c1"\nname = "county offer"\nowner = "author"\nchannels = ["sms"]\nkind = "batch"\n'
        '[content.sms]\ntext = "hello there"\n'
    )
    return (
        STAFF_TOML.format(full_file=full)
        + f"""
[approval]
required = true
tick = "0.1s"
channel_confirmation = false
countersign = {{ marketing = 2 }}
[campaigns]
directory = "{campaigns}"
[plugins.email_approval]
from_address = "approvals@gw.example"
relay_host = "127.0.0.1"
relay_port = {relay_port}
listen = "127.0.0.1:{listen_port}"
secret = "{SECRET}"
max_message_bytes = 4096
"""
    )


def send_reply(port: int, sender: str, first_line: str, token: str, *, pad: int = 0):
    """One reply over SMTP; returns the (code, text) answer to DATA."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "approvals@gw.example"
    message["Subject"] = "Re: [Approval approve] county offer"
    message.set_content(f"{first_line}\n\n> Token: {token}\n" + ("x" * 69 + "\n") * (pad // 70))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.mail(sender)[0] == 250
        assert smtp.rcpt("approvals@gw.example")[0] == 250
        try:
            return smtp.data(message.as_bytes(policy=email.policy.SMTP))  # CRLF, as mailers send
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


async def reply(port, sender, first_line, token, **kw):
    return await trio.to_thread.run_sync(lambda: send_reply(port, sender, first_line, token, **kw))


def token_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    return next(line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("Token: "))


async def test_email_replies(tmp_path, relay):
    """Accepted with a valid token; refused when forged, reused, expired, from the wrong sender,
    from a disabled account, oversize, or without a decision; the SMTP answer never differs."""
    handler, relay_port = relay
    port = free_port()
    async with open_gateway(tmp_path, config(tmp_path, relay_port, port)) as gw:
        await wait_until(lambda: len(handler.messages) >= 2)
        book = gw.gateway.approvals
        (approval,) = book.pending()
        by_to = {str(m["To"]): m for m in handler.messages}
        notice = by_to["city1@corp.example"]
        assert "county offer" in str(notice["Subject"])
        body = notice.get_body(preferencelist=("plain",)).get_content()
        assert "hello there" in body and "Targets: 0" in body
        token1, token2 = token_of(notice), token_of(by_to["city2@corp.example"])
        service = gw.daemon.pm.get_plugin("email_approval").service
        secret = SECRET.encode()
        ok = (250, b"2.0.0 OK")

        forged = token1[:-4] + ("0000" if not token1.endswith("0000") else "1111")
        assert await reply(port, "city1@corp.example", "同意", forged) == ok
        assert await reply(port, "city2@corp.example", "approve", token1) == ok  # wrong sender
        claims = read_token(secret, token1, 0)
        expired = make_token(secret, attrs.evolve(claims, expires=1))
        assert await reply(port, "city1@corp.example", "approve", expired) == ok
        assert await reply(port, "city1@corp.example", "maybe later", token1) == ok
        assert await reply(port, "city1@corp.example", "approve", token1, pad=5000) == ok
        assert approval.signs == []
        assert dict(service.refusals) == {
            "token_bad_signature": 1,
            "wrong_sender": 1,
            "token_expired": 1,
            "no_decision": 1,
            "oversize": 1,
        }
        # far over the limit, aiosmtpd itself refuses the data (it says nothing of campaigns)
        code, _ = await reply(port, "city1@corp.example", "approve", token1, pad=20000)
        assert code == 552

        assert await reply(port, "city1@corp.example", "同意", token1) == ok
        assert [(s.actor, s.via) for s in approval.signs] == [("city1", "email")]
        assert await reply(port, "city1@corp.example", "同意", token1) == ok  # reused
        assert service.refusals["token_used"] == 1 and len(approval.signs) == 1

        staff = gw.gateway.staff
        await staff.put_account(
            attrs.evolve(staff.accounts["city2"], enabled=False), actor="4a-push", action="x"
        )
        assert await reply(port, "city2@corp.example", "同意", token2) == ok
        assert service.refusals["decision_refused"] == 1 and len(approval.signs) == 1
        # a token this gateway never issued, even correctly signed, is refused
        unknown = make_token(secret, attrs.evolve(claims, nonce="feedfacefeedface"))
        assert await reply(port, "city1@corp.example", "approve", unknown) == ok
        assert service.refusals["token_unknown"] == 1
        assert service.accepted == 1


async def test_reject_by_email_returns_campaign_to_draft(tmp_path, relay):
    """不同意 on the first line rejects; the campaign goes back to draft."""
    handler, relay_port = relay
    port = free_port()
    async with open_gateway(tmp_path, config(tmp_path, relay_port, port)) as gw:
        await wait_until(lambda: len(handler.messages) >= 2)
        (approval,) = gw.gateway.approvals.pending()
        notice = next(m for m in handler.messages if str(m["To"]) == "city2@corp.example")
        assert (await reply(port, "City2@Corp.example", "不同意", token_of(notice)))[0] == 250
        assert approval.state.value == "rejected"
        assert gw.gateway.campaigns.get("c1").campaign.state.value == "draft"


def self_signed(tmp_path):
    """A throwaway certificate for 127.0.0.1 (openssl, as scripts/test.sh installs it)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_starttls_when_a_certificate_is_configured(tmp_path, relay):
    """With tls_cert/tls_key the listener offers STARTTLS and a reply over TLS is accepted."""
    handler, relay_port = relay
    cert, key = self_signed(tmp_path)
    port = free_port()
    extra = config(tmp_path, relay_port, port) + f'tls_cert = "{cert}"\ntls_key = "{key}"\n'
    async with open_gateway(tmp_path, extra) as gw:
        await wait_until(lambda: len(handler.messages) >= 2)
        notice = next(m for m in handler.messages if str(m["To"]) == "city1@corp.example")
        token = token_of(notice)

        def over_tls():
            context = ssl.create_default_context(cafile=str(cert))
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                smtp.ehlo()
                assert smtp.has_extn("starttls")
                smtp.starttls(context=context)
                smtp.ehlo()
                message = EmailMessage()
                message["From"] = "city1@corp.example"
                message["Subject"] = "Re: approval"
                message.set_content(f"approve\n\n{token}\n")
                smtp.send_message(message, to_addrs=["approvals@gw.example"])

        await trio.to_thread.run_sync(over_tls)
        (approval,) = gw.gateway.approvals.pending()
        assert [(s.actor, s.via) for s in approval.signs] == [("city1", "email")]


async def test_listener_binds_to_loopback_by_default():
    """The default listen address is loopback; without a secret the section is refused."""
    from gateway.errors import ConfigError
    from plugins.email_approval import parse_email_approval_config

    assert parse_email_approval_config({}, "plugins.email_approval").listen.startswith("127.0.0.1:")
    with pytest.raises(ConfigError, match="secret"):
        parse_email_approval_config({"from_address": "a@b"}, "plugins.email_approval")


async def test_rate_limit_per_peer(tmp_path, relay):
    """Past rate_per_minute replies from one peer, the listener answers 451 and decides nothing."""
    handler, relay_port = relay
    port = free_port()
    extra = config(tmp_path, relay_port, port).replace(
        "max_message_bytes = 4096", "max_message_bytes = 4096\nrate_per_minute = 2"
    )
    async with open_gateway(tmp_path, extra) as gw:
        await wait_until(lambda: len(handler.messages) >= 2)
        notice = next(m for m in handler.messages if str(m["To"]) == "city1@corp.example")
        token = token_of(notice)
        assert (await reply(port, "x@corp.example", "approve", "no token"))[0] == 250
        assert (await reply(port, "y@corp.example", "approve", "no token"))[0] == 250
        assert (await reply(port, "city1@corp.example", "approve", token))[0] == 451
        (approval,) = gw.gateway.approvals.pending()
        assert approval.signs == []
        service = gw.daemon.pm.get_plugin("email_approval").service
        assert service.refusals["rate"] == 1


async def test_restart_sends_no_second_notification(tmp_path, relay):
    """After a restart, approvers holding an unused, unexpired token get no second email."""
    handler, relay_port = relay
    port = free_port()
    async with open_gateway(tmp_path, config(tmp_path, relay_port, port)):
        await wait_until(lambda: len(handler.messages) >= 2)
    (tmp_path / "campaigns" / "c1.toml").unlink()  # config() writes it again
    (tmp_path / "campaigns").rmdir()
    async with open_gateway(tmp_path, config(tmp_path, relay_port, port)) as gw:
        service = gw.daemon.pm.get_plugin("email_approval").service
        await wait_until(lambda: service.already_notified == 2)
        assert len(handler.messages) == 2 and service.sent == 0


async def test_channel_confirmation_is_not_offered_by_email(tmp_path, relay):
    """After the approval step, the channel owner gets no email token (it needs the figures)."""
    handler, relay_port = relay
    port = free_port()
    extra = (
        config(tmp_path, relay_port, port)
        .replace("channel_confirmation = false", "channel_confirmation = true")
        .replace("countersign = { marketing = 2 }", "")
    )
    async with open_gateway(tmp_path, extra) as gw:
        await wait_until(lambda: len(handler.messages) >= 2)
        notice = next(m for m in handler.messages if str(m["To"]) == "city1@corp.example")
        assert (await reply(port, "city1@corp.example", "同意", token_of(notice)))[0] == 250
        service = gw.daemon.pm.get_plugin("email_approval").service
        await wait_until(lambda: service.not_by_email == 1)
        assert len(handler.messages) == 2 and gw.gateway.approvals.pending()[0].step == 1
