"""The full file is re-read every full_interval, and applied only when it changed."""

from __future__ import annotations

from types import SimpleNamespace

import trio

from gateway.staff.plugin import StaffComponent, parse_staff_config
from tests.gateway.staff.staff_data import ACCOUNTS, ROLES_TOML, write_full_file


async def test_full_file_reread_each_interval(tmp_path, autojump_clock):
    """A changed file is applied at the next interval, not before; an unchanged one is skipped."""
    full = write_full_file(tmp_path / "4a.json")
    config = parse_staff_config(
        {"full_file": str(full), "full_interval": "1h", "roles": ROLES_TOML}
    )
    gateway = SimpleNamespace(
        config=SimpleNamespace(
            sections={"staff": config},
            gateway=SimpleNamespace(sqlite_synchronous="normal"),
            path=None,
        ),
        state_dir=tmp_path / "state",
        staff=None,
    )
    component = StaffComponent(gateway)
    applied = []
    async with component.open():
        directory = component.opened()
        original = directory.apply_full

        async def counting(*args, **kwargs):
            applied.append(trio.current_time())
            return await original(*args, **kwargs)

        directory.apply_full = counting
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            await nursery.start(component.run)
            write_full_file(full, [a for a in ACCOUNTS if a["id"] != "city2"])
            await trio.sleep(3599)
            assert directory.accounts["city2"].enabled and applied == []
            # the sync reads the file in a thread, during which the autojump clock may move on:
            # wait for the component to say it went round, not for a fixed time
            await component.synced.wait()
            assert not directory.accounts["city2"].enabled
            assert len(applied) == 1 and applied[0] >= start + 3600
            for _ in range(3):
                await component.synced.wait()
            assert len(applied) == 1  # unchanged since: not applied again
            nursery.cancel_scope.cancel()
