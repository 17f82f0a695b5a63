"""From a contact's content to the MM the MMSC accepts: pictures read, fitted, size checked.

A campaign's ``[content.mms]`` gives ``text``, ``subject`` and ``attachment.<name>`` entries
(see :mod:`gateway.content`); relative picture paths are files next to the campaign (the
channel's ``media_dir``, by default the ``[campaigns] directory``). The MMSC profile limits the
MM's size and the pictures' pixels. With Pillow installed, a picture too large in pixels is
scaled down to fit, and an MM too large in bytes has its pictures re-encoded as smaller JPEGs
until it fits; without Pillow, such a message is refused with the reason, so that nothing
reaches the MMSC that it would refuse or the handset could not show.

Blocking (file reads, Pillow): :class:`Composer` runs in a worker thread (the channel calls it
through ``trio.to_thread.run_sync`` with a limiter). Prepared pictures are cached by path,
modification time and size, so a campaign's picture is read and scaled once, not per contact.
"""

from __future__ import annotations

import io
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import attrs

from adapters.mm7 import Image, LocalMM7Error, Part, build_content
from gateway.content import Content

try:  # optional: pip install 'marketing-contact-gateway[mms]'
    from PIL import Image as PilImage
except ImportError:  # pragma: no cover - exercised by monkeypatching HAVE_PILLOW
    PilImage = None

HAVE_PILLOW = PilImage is not None
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif")
CACHE_ENTRIES = 64


class ComposeError(Exception):
    """The content cannot become an MM within the MMSC's limits; the message says why
    (reported as the ``rejected`` delivery's error)."""


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or JPEG header, or None when it cannot be read."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            i += 2 + length
    return None


@attrs.define
class Composer:
    """Builds MMs for one channel; thread-safe (the cache has a lock)."""

    media_dir: Path | None
    max_message_bytes: int
    max_image_size: tuple[int, int]
    scale: bool = HAVE_PILLOW  # False: refuse what does not fit instead of scaling it
    _cache: OrderedDict[tuple[Any, ...], Image] = attrs.field(factory=OrderedDict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    stats: dict[str, int] = attrs.field(factory=lambda: {"scaled": 0, "reencoded": 0})

    def compose(self, content: Content) -> tuple[Part, int]:
        """The MM for ``content`` and its size in bytes; raises ComposeError."""
        images = [self._picture(a.name, a.location, a.media_type) for a in content.attachments]
        try:
            part = build_content(content.text, images)
        except LocalMM7Error as exc:
            raise ComposeError(str(exc)) from exc
        if len(part.body) <= self.max_message_bytes:
            return part, len(part.body)
        if not images or not self.scale:
            hint = "" if not images or self.scale else " (install Pillow to scale pictures down)"
            raise ComposeError(
                f"the MM is {len(part.body)} bytes, over the MMSC limit of"
                f" {self.max_message_bytes} bytes{hint}"
            )
        return self._shrink(content.text, images)

    def _path(self, location: str) -> Path:
        if "://" in location:
            raise ComposeError(f"picture {location!r}: only files are supported, not URLs")
        path = Path(location)
        if not path.is_absolute():
            if self.media_dir is None:
                raise ComposeError(f"picture {location!r}: relative path and no media_dir")
            path = self.media_dir / path
        return path

    def _picture(self, name: str, location: str, media_type: str) -> Image:
        path = self._path(location)
        try:
            stat = path.stat()
        except OSError as exc:
            raise ComposeError(f"picture {location!r}: {exc.strerror or exc}") from exc
        key = (str(path), stat.st_mtime_ns, stat.st_size, media_type)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        image = self._prepare(name, path, media_type)
        with self._lock:
            self._cache[key] = image
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return image

    def _prepare(self, name: str, path: Path, media_type: str) -> Image:
        if media_type not in MEDIA_TYPES:
            raise ComposeError(f"picture {path.name!r}: {media_type} is not one of {MEDIA_TYPES}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ComposeError(f"picture {path.name!r}: {exc.strerror or exc}") from exc
        size = image_size(data)
        if size is None:
            raise ComposeError(f"picture {path.name!r}: not a readable {media_type} file")
        max_w, max_h = self.max_image_size
        file_name = f"{_safe(name)}{Path(path).suffix.lower() or '.img'}"
        if size[0] <= max_w and size[1] <= max_h:
            return Image(name=file_name, media_type=media_type, data=data)
        if not self.scale:
            raise ComposeError(
                f"picture {path.name!r} is {size[0]}x{size[1]} pixels, over the MMSC limit of"
                f" {max_w}x{max_h} (install Pillow to scale pictures down)"
            )
        self.stats["scaled"] += 1
        return self._encode(name, data, (max_w, max_h), media_type)

    def _encode(
        self, name: str, data: bytes, box: tuple[int, int], media_type: str, quality: int = 85
    ) -> Image:
        try:
            return self._encode_with_pillow(name, data, box, media_type, quality)
        except ComposeError:
            raise
        except Exception as exc:  # a corrupt or hostile file (decompression bomb)
            raise ComposeError(f"picture {name!r} cannot be scaled: {exc}") from exc

    def _encode_with_pillow(
        self, name: str, data: bytes, box: tuple[int, int], media_type: str, quality: int
    ) -> Image:
        assert PilImage is not None
        with PilImage.open(io.BytesIO(data)) as picture:
            picture.thumbnail(box)
            out = io.BytesIO()
            if media_type == "image/jpeg" or quality < 85:
                picture.convert("RGB").save(out, format="JPEG", quality=quality, optimize=True)
                return Image(
                    name=f"{_safe(name)}.jpg", media_type="image/jpeg", data=out.getvalue()
                )
            fmt = "PNG" if media_type == "image/png" else "GIF"
            picture.save(out, format=fmt, optimize=True)
            suffix = ".png" if fmt == "PNG" else ".gif"
            return Image(name=f"{_safe(name)}{suffix}", media_type=media_type, data=out.getvalue())

    def _shrink(self, text: str | None, images: list[Image]) -> tuple[Part, int]:
        """Re-encode every picture as a smaller JPEG until the MM fits (at most 6 rounds)."""
        box = self.max_image_size
        quality = 75
        for _round in range(6):
            self.stats["reencoded"] += 1
            smaller = [
                self._encode(i.name.rpartition(".")[0], i.data, box, i.media_type, quality)
                for i in images
            ]
            part = build_content(text, smaller)
            if len(part.body) <= self.max_message_bytes:
                return part, len(part.body)
            box = (max(16, box[0] * 3 // 4), max(16, box[1] * 3 // 4))
            quality = max(30, quality - 10)
        raise ComposeError(
            f"the MM is still {len(part.body)} bytes after scaling its pictures down, over the"
            f" MMSC limit of {self.max_message_bytes} bytes"
        )


def _safe(name: str) -> str:
    """A picture name usable as a Content-Location (ASCII letters, digits, ``-_.``)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    return cleaned or "picture"
