"""[plugins.boss_files] is parsed strictly: every mistake names its dotted key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from plugins.boss_files.config import parse_boss_files_config

KEY = "plugins.boss_files"


def feed(**overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "kind": "list",
        "source": "/tmp/in",
        "category": "blacklist",
        "columns": ["msisdn"],
    }
    table.update(overrides)
    return {"feeds": {"f": table}}


@pytest.mark.parametrize(
    "table,key,words",
    [
        (feed(kind="lists"), "feeds.f.kind", "must be one of"),
        (feed(source="sftp://boss@h/out"), "feeds.f.known_hosts", "known_hosts"),
        (feed(source="ftp://boss:pw@h/out"), "feeds.f.source", "no password in the URL"),
        (feed(source="http://h/x"), "feeds.f.source", "expected ftp://"),
        (feed(kind="list_delta"), "feeds.f.columns", "'op' column"),
        (feed(columns=["msisdn", "op"]), "feeds.f.columns", "only for delta kinds"),
        (feed(encoding="latin-1"), "feeds.f.encoding", "encoding must be one of"),
        (feed(category="dnd"), "feeds.f.category", "one of"),
        (feed(category="opt_out_channel"), "feeds.f.scope", "needs scope"),
        (feed(columns=["number"]), "feeds.f.columns", "msisdn"),
        (
            feed(kind="profiles", category="", columns=["msisdn", "town"]),
            "feeds.f.columns",
            "unknown profile columns",
        ),
        (feed(checksum="crc32"), "feeds.f.checksum", "must be one of"),
        (feed(check_name="x.chk"), "feeds.f.check_name", "{name}"),
        (feed(colums=["msisdn"]), "feeds.f.colums", "unknown key"),
        (
            feed(kind="targets", category="", campaign_pattern="^(.+)_"),
            "feeds.f.campaign_pattern",
            "(?P<campaign>",
        ),
        ({"report": {"at": "25:00"}}, "report.at", "HH:MM"),
        (
            {
                "report": {
                    "destinations": [{"target": "ftp://u@h/x", "password_env": "NO_SUCH_VAR_X"}]
                }
            },
            "password_env",
            "not set",
        ),
    ],
)
def test_mistakes_are_named(table: dict[str, Any], key: str, words: str) -> None:
    """Each wrong setting is refused with its dotted key and a reason."""
    with pytest.raises(ConfigError) as info:
        parse_boss_files_config(table, KEY)
    text = str(info.value)
    assert f"{KEY}." in text and key in text and words in text, text


def test_sftp_source_with_password_file_and_known_hosts(tmp_path: Path) -> None:
    """An SFTP source reads its password from a file and keeps the known_hosts path; the password is not in its repr."""
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    config = parse_boss_files_config(
        feed(source="sftp://boss@10.0.0.1:2222/out", password_file=str(pw), known_hosts="/etc/kh"),
        KEY,
    )
    source = config.feeds[0].source
    assert (source.scheme, source.host, source.port, source.user, source.path) == (
        "sftp",
        "10.0.0.1",
        2222,
        "boss",
        "/out",
    )
    assert source.password == "s3cret" and source.known_hosts == "/etc/kh"
    assert "s3cret" not in repr(config)
