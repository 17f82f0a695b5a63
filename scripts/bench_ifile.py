"""Benchmark: a 1,000,000-line BOSS profile file from check file to index swap (issue 13).

Usage: bench_ifile.py [--lines N] [--quick]. For each encoding (GBK, UTF-8) a profile data file
(``msisdn|imsi|brand|region|plan``, Chinese brand and region names) and its MD5 check file are
written to a temporary directory, then one boss_files feed takes the pair the way the daemon
does: check file parsed, size/count/MD5 verified, duplicate lookup, snapshot written (UTF-8,
transcoded), validated and loaded by the core's profile loader, applied-files row committed,
index swapped into a :class:`ProfileHolder`, pair archived. The budget is 30 s per file.

Prints one JSON object on the last line: per encoding ``seconds``, ``lines_per_s``,
``within_30s``; the sizes used (``--quick`` shrinks them to 50,000 lines). ``list_gbk``: the
same number of lines as a full complaint list (GBK) replacing the list through contact
control's list API in a real SQLite state database.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.contact.config import parse_contact_config  # noqa: E402
from gateway.contact.control import open_local_database  # noqa: E402
from gateway.contact.lists import ListStore  # noqa: E402
from gateway.profiles.holder import ProfileHolder  # noqa: E402
from plugins.boss_files.apply import Applier  # noqa: E402
from plugins.boss_files.config import parse_boss_files_config  # noqa: E402
from plugins.boss_files.inbound import Feed, open_directory  # noqa: E402
from plugins.boss_files.state import FilesState  # noqa: E402

BRANDS = ("全球通", "动感地带", "神州行")
REGIONS = ("北京", "上海", "广州", "深圳", "杭州", "成都")
BUDGET_S = 30.0


def write_list(folder: Path, name: str, lines: int) -> None:
    data = "".join(f"{13800000000 + i}|投诉\n" for i in range(lines)).encode("gbk")
    (folder / name).write_bytes(data)
    digest = hashlib.md5(data).hexdigest()
    (folder / f"{name}.chk").write_bytes(f"{name}|{lines}|{len(data)}|{digest}\n".encode())


def write_pair(folder: Path, name: str, lines: int, encoding: str) -> None:
    parts = []
    for i in range(lines):
        parts.append(
            f"{13800000000 + i}|{460000000000000 + (i * 7368787) % 10**10}|"
            f"{BRANDS[i % 3]}|{REGIONS[i % 6]}|P{i % 40:02d}\n"
        )
    data = "".join(parts).encode(encoding)
    (folder / name).write_bytes(data)
    digest = hashlib.md5(data).hexdigest()
    (folder / f"{name}.chk").write_bytes(f"{name}|{lines}|{len(data)}|{digest}\n".encode())


class BenchGateway:
    """The parts of the Gateway object a feed touches."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.profiles = ProfileHolder()
        self.contact_control = None
        self.campaigns = None

    def logger(self, **context: Any) -> Any:
        return structlog.get_logger().bind(**context)


async def run_one(lines: int, encoding: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ifile-") as tmp:
        folder, work = Path(tmp) / "in", Path(tmp) / "work"
        folder.mkdir()
        work.mkdir()
        write_pair(folder, "PROFILE_1.txt", lines, encoding)
        config = parse_boss_files_config(
            {
                "settle_time": 0,
                "feeds": {
                    "profiles": {
                        "kind": "profiles",
                        "source": str(folder),
                        "pattern": "PROFILE_*.txt",
                        "encoding": encoding,
                        "columns": ["msisdn", "imsi", "brand", "region", "plan"],
                    }
                },
            },
            "plugins.boss_files",
        )
        gateway = BenchGateway(Path(tmp))
        state = FilesState(work / "boss_files.sqlite")
        fc = config.feeds[0]
        feed = Feed(
            config=fc,
            source=open_directory(fc.source, trio.CapacityLimiter(2)),
            work_dir=work,
            state=state,
            applier=Applier(gateway, state, work),
            settle_time=0.0,
            log=gateway.logger(),
        )
        started = time.perf_counter()
        outcome = await feed.poll_once()
        seconds = time.perf_counter() - started
        state.close()
        assert outcome == [("PROFILE_1.txt", "applied")], outcome
        assert len(gateway.profiles.index) == lines
        return {
            "seconds": round(seconds, 2),
            "lines_per_s": round(lines / seconds),
            "within_30s": seconds < BUDGET_S,
        }


class BenchControl:
    def __init__(self, lists: ListStore) -> None:
        self.lists = lists


async def run_list(lines: int) -> dict[str, Any]:
    """A full complaint list (GBK) replacing the list in the real SQLite state database."""
    with tempfile.TemporaryDirectory(prefix="bench-ifile-") as tmp:
        folder, work = Path(tmp) / "in", Path(tmp) / "work"
        folder.mkdir()
        work.mkdir()
        write_list(folder, "COMPLAINT_1.txt", lines)
        config = parse_boss_files_config(
            {
                "settle_time": 0,
                "feeds": {
                    "complaints": {
                        "kind": "list",
                        "source": str(folder),
                        "pattern": "COMPLAINT_*.txt",
                        "encoding": "gbk",
                        "category": "complaint_sensitive",
                        "columns": ["msisdn", "reason"],
                    }
                },
            },
            "plugins.boss_files",
        )
        gateway = BenchGateway(Path(tmp))
        contact = parse_contact_config({})
        async with open_local_database(contact, Path(tmp) / "state.sqlite") as writer:
            lists = ListStore(writer)
            gateway.contact_control = BenchControl(lists)  # type: ignore[assignment]
            state = FilesState(work / "boss_files.sqlite")
            fc = config.feeds[0]
            feed = Feed(
                config=fc,
                source=open_directory(fc.source, trio.CapacityLimiter(2)),
                work_dir=work,
                state=state,
                applier=Applier(gateway, state, work),
                settle_time=0.0,
                log=gateway.logger(),
            )
            started = time.perf_counter()
            outcome = await feed.poll_once()
            seconds = time.perf_counter() - started
            state.close()
            assert outcome == [("COMPLAINT_1.txt", "applied")], outcome
            assert lists.size("complaint_sensitive") == lines
        return {"seconds": round(seconds, 2), "lines_per_s": round(lines / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 lines (smoke run)")
    args = parser.parse_args()
    lines = 50_000 if args.quick else args.lines
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    result: dict[str, Any] = {"lines": lines, "quick": args.quick, "budget_s": BUDGET_S}
    for encoding in ("gbk", "utf-8"):
        result[encoding.replace("-", "")] = trio.run(run_one, lines, encoding)
    result["list_gbk"] = trio.run(run_list, lines)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
