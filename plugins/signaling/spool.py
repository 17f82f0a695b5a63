"""A spool directory that a probe rotates files into, read once each, in order, resumably.

Used by the pcap directory source and the XDR file source. A file is *complete* when the probe
has renamed it into the directory under a matching name (names starting with ``.`` or ending
in ``.tmp`` / ``.part`` are never taken) and it has not been modified for ``settle`` seconds.
Complete files are taken in name order (natural: ``x.pcap9`` before ``x.pcap10``) or
modification time order, one at a time.

Progress (the current file and the byte offset after the last batch handed on) is kept in
``<state_dir>/signaling/<source>.progress``, written atomically (temporary file + fsync +
rename), so a restarted gateway resumes where it stopped instead of re-reading. A finished
file is moved to the done directory, renamed with a ``.done`` suffix, or deleted.

All methods block (file system): call them through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import attrs

from gateway.config_reader import TableReader
from gateway.store import STATE_FILE_MODE, make_state_dir

DONE_ACTIONS = ("move", "mark", "delete")
_NOT_YET = (".tmp", ".part", ".done")  # names never taken (being written, or finished)
_DIGITS = re.compile(r"(\d+)")


def name_key(name: str) -> tuple:
    """Natural order of file names: rotation counters (tcpdump -C: x.pcap9, x.pcap10) by value."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


@attrs.frozen(kw_only=True)
class SpoolConfig:
    directory: Path
    patterns: tuple[str, ...]
    settle: float = 5.0
    poll_interval: float = 1.0
    order: str = "name"
    done: str = "move"
    done_directory: Path | None = None


def read_spool(r: TableReader, patterns: tuple[str, ...]) -> SpoolConfig | None:
    """The spool keys; None when ``directory`` is absent (the source is then not enabled)."""
    directory = r.str("directory", None)
    config = SpoolConfig(
        directory=Path(directory or "."),
        patterns=r.str_list("patterns", patterns),
        settle=r.duration("settle", 5.0, min=0),
        poll_interval=r.duration("poll_interval", 1.0, min=0.01, max=3600),
        order=r.str("order", "name", choices=("name", "mtime")),
        done=r.str("done", "move", choices=DONE_ACTIONS),
        done_directory=Path(d) if (d := r.str("done_directory", None)) else None,
    )
    return config if directory else None


def resolve_against_config(config: SpoolConfig, gateway: Any) -> SpoolConfig:
    """Relative directories are relative to gateway.toml's directory (as elsewhere in it)."""
    path = getattr(getattr(gateway, "config", None), "path", None)
    if path is None:
        return config
    base = Path(path).resolve().parent
    done = config.done_directory
    return attrs.evolve(
        config,
        directory=base / config.directory,  # an absolute directory stays as it is
        done_directory=None if done is None else base / done,
    )


class Spool:
    """See the module docstring."""

    def __init__(self, config: SpoolConfig, progress_path: Path) -> None:
        self.config = config
        self.progress_path = progress_path
        self.files_done = 0

    @property
    def done_directory(self) -> Path:
        return self.config.done_directory or self.config.directory / "done"

    # -- progress ---------------------------------------------------------------------------

    def load_progress(self) -> tuple[str, int] | None:
        try:
            data = json.loads(self.progress_path.read_text())
            return str(data["file"]), int(data["offset"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # damaged: start the current file again rather than stop

    def save_progress(self, name: str | None, offset: int = 0) -> None:
        path = self.progress_path
        make_state_dir(path.parent)
        if name is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            os.fchmod(f.fileno(), STATE_FILE_MODE)  # a state file: 0640 whatever the umask
            json.dump({"file": name, "offset": offset, "saved_at": time.time()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    # -- files ------------------------------------------------------------------------------

    def _candidates(self, now: float) -> list[tuple[float, tuple, Path]]:
        out = []
        cfg = self.config
        try:
            entries = list(os.scandir(cfg.directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.endswith(_NOT_YET):
                continue
            if not any(fnmatch.fnmatch(name, p) for p in cfg.patterns):
                continue
            try:
                if not entry.is_file():
                    continue
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if now - mtime < cfg.settle:
                continue
            out.append((mtime if cfg.order == "mtime" else 0.0, name_key(name), Path(entry.path)))
        out.sort()
        return out

    def later_exists(self, path: Path) -> bool:
        """Whether another matching file sorts after ``path`` (settled or not): the probe has
        rotated past it, so a tail still missing from ``path`` will not come."""
        cfg = self.config
        try:
            mine = (path.stat().st_mtime if cfg.order == "mtime" else 0.0, name_key(path.name))
            entries = list(os.scandir(cfg.directory))
        except FileNotFoundError:
            return True
        for entry in entries:
            name = entry.name
            if name == path.name or name.startswith(".") or name.endswith(_NOT_YET):
                continue
            if not any(fnmatch.fnmatch(name, p) for p in cfg.patterns):
                continue
            try:
                key = (entry.stat().st_mtime if cfg.order == "mtime" else 0.0, name_key(name))
            except FileNotFoundError:
                continue
            if key > mine:
                return True
        return False

    def next_file(self, now: float | None = None) -> tuple[Path, int] | None:
        """``(path, offset)`` of the file to read next: the one in progress first."""
        progress = self.load_progress()
        if progress is not None:
            path = self.config.directory / progress[0]
            if path.is_file():
                return path, progress[1]
            self.save_progress(None)
        candidates = self._candidates(time.time() if now is None else now)
        if not candidates:
            return None
        return candidates[0][2], 0

    def finish(self, path: Path) -> None:
        """The file was read to its end: move, mark or delete it, then forget the progress."""
        action = self.config.done
        try:
            if action == "move":
                self.done_directory.mkdir(parents=True, exist_ok=True)
                # shutil.move: the done directory may be on another file system
                shutil.move(path, self.done_directory / path.name)
            elif action == "mark":
                os.replace(path, path.with_name(path.name + ".done"))
            else:
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            pass  # removed meanwhile (by an operator): nothing left to move
        self.save_progress(None)
        self.files_done += 1
