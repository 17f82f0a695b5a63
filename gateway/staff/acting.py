"""Who is acting: the staff account a control-socket command runs as, and its permission checks.

The account comes from the OS user of the ``gatewayctl`` process (the control socket reads
the peer's credentials, :mod:`gateway.control_peer`) through ``[staff] os_users``
(``alice = "city1"``). ``--as ACCOUNT`` names another account; only root and members of
``[staff] admin_group`` may do that (a mapped user may repeat their own account). A command
run in-process (no peer: tests, the daemon itself) acts as its ``--as``.

When ``[staff]`` is not configured at all, the install has one operator: the socket's file
mode is the access control, and the contact commands (``dnd``, ``why``, ``contacts``) work as
they always did (:func:`authorise` lets them through, MSISDNs shown in clear). Commands of the
staff and approval components still need an account: there are none without ``[staff]``.

Every refusal and every use of a permission goes to the directory's audit table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from gateway.control_peer import Peer, current_peer
from gateway.errors import AdminCommandError
from gateway.numbers import mask
from gateway.staff.model import Permission, PermissionDenied

if TYPE_CHECKING:
    from gateway.staff.directory import StaffDirectory


@attrs.frozen(kw_only=True)
class ActingRules:
    """``[staff] os_users`` and ``admin_group``: how an OS user becomes a staff account."""

    os_users: Mapping[str, str] = attrs.field(factory=dict)
    admin_group: str = ""  # members may act as any account with --as (root always may)

    def may_impersonate(self, peer: Peer) -> bool:
        return peer.is_root or (bool(self.admin_group) and self.admin_group in peer.groups)


def split_as(args: list[str]) -> tuple[list[str], str]:
    """``(the other words, the account named by --as or "")``."""
    words: list[str] = []
    named = ""
    i = 0
    while i < len(args):
        if args[i] == "--as":
            if i + 1 >= len(args):
                raise AdminCommandError("--as needs a staff account")
            named = args[i + 1]
            i += 2
            continue
        if args[i].startswith("--as="):
            named = args[i].split("=", 1)[1]
        else:
            words.append(args[i])
        i += 1
    return words, named


def _peer_actor(peer: Peer) -> str:
    """How an OS user is named in the audit trail when no account could be given to it."""
    return f"os:{peer.user}"


async def acting_account(
    args: list[str], rules: ActingRules, directory: StaffDirectory, *, action: str
) -> tuple[list[str], str]:
    """``(the other words, the account)`` for a command; AdminCommandError (audited) when the
    peer names an account it may not act as, or is mapped to none."""
    words, named = split_as(args)
    peer = current_peer()
    if peer is None:  # in-process: no OS user to map
        if not named:
            raise AdminCommandError("name the staff account you act as: --as ACCOUNT")
        return words, named
    mapped = rules.os_users.get(peer.user, "")
    if named and named != mapped:
        if not rules.may_impersonate(peer):
            await directory.audit(
                _peer_actor(peer),
                action,
                named,
                outcome="denied",
                detail=f"--as refused: uid {peer.uid} is not root nor in the admin group",
            )
            raise AdminCommandError(
                f"OS user {peer.user!r} may not act as another staff account (--as): only root"
                " and members of [staff] admin_group may"
                + (f"; you act as {mapped!r} without --as" if mapped else "")
            )
        return words, named
    if not mapped:
        await directory.audit(
            _peer_actor(peer), action, "-", outcome="denied", detail="no staff account"
        )
        raise AdminCommandError(
            f"OS user {peer.user!r} is not mapped to a staff account ([staff] os_users);"
            " name the staff account you act as: --as ACCOUNT (root and [staff] admin_group only)"
        )
    return words, mapped


async def authorise(
    gateway: Any, args: list[str], permission: Permission, *, action: str, subject: str = "-"
) -> tuple[list[str], str | None]:
    """For the contact commands: ``(the other words, the account)`` once the acting account
    holds ``permission``; the use is audited, allowed or denied. With ``[staff]`` not
    configured: ``(words, None)``, nothing checked (the single-operator install)."""
    config = gateway.config.sections.get("staff")
    if config is None or not config.configured or gateway.staff is None:
        return split_as(args)[0], None
    directory: StaffDirectory = gateway.staff
    words, actor = await acting_account(args, config.acting, directory, action=action)
    try:
        directory.require(actor, permission)
    except PermissionDenied as exc:
        await directory.audit(actor, action, subject, outcome="denied", detail=permission.value)
        raise AdminCommandError(str(exc)) from None
    await directory.audit(actor, action, subject, detail=permission.value)
    return words, actor


def staff_configured(gateway: Any) -> bool:
    """True when ``[staff]`` is in the configuration (permissions are enforced)."""
    config = gateway.config.sections.get("staff")
    return config is not None and config.configured and gateway.staff is not None


async def clear_or_masked(
    gateway: Any, args: list[str], *, action: str, subject: str = "-"
) -> tuple[list[str], bool]:
    """For an admin output that can show subscriber numbers: ``(the other words, clear)``.

    ``--clear`` asks for clear MSISDNs; with ``[staff]`` configured the acting account must
    hold ``msisdn.read_clear`` (the use audited, allowed or denied), and without ``--clear``
    the output is masked. Without ``[staff]`` (the single-operator install) numbers are shown
    in clear, as they always were, and ``--as`` is accepted and ignored.
    """
    want = "--clear" in args
    rest = [a for a in args if a != "--clear"]
    if not staff_configured(gateway):
        return split_as(rest)[0], True
    if not want:
        return split_as(rest)[0], False
    words, _actor = await authorise(
        gateway, rest, Permission.READ_CLEAR_MSISDN, action=action, subject=subject
    )
    return words, True


def masked(value: Any) -> Any:
    """``value`` with every ``msisdn`` field masked (``861****01``), at any depth."""
    if isinstance(value, Mapping):
        return {
            k: mask(v) if k == "msisdn" and isinstance(v, str) else masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value
