"""Structured logging for the whole process, configured once at start-up.

One JSON object per line on stdout (journald picks it up), or a coloured console rendering
when stdout is a terminal. Every line has ``event``, ``level`` and ``timestamp`` (ISO 8601,
UTC) plus the context bound by the caller (``plugin``, ``campaign``, ``channel``) and the
contextvars bound with :func:`structlog.contextvars.bind_contextvars`.

Standard-library loggers (trio, smpplib...) are routed through the same processors, so the
masking and the renderer apply to them too.

Privacy: :class:`Masker` masks subscriber numbers of any country (``13812345678`` ->
``138****5678``, ``+447911123456`` -> ``+4479****3456``), IMSIs of any MCC (``460001234567890``
-> ``46000******7890``) and IMEIs (also written with separators) anywhere in the event dict,
nested values and free text included: every run of 8 or more digits, except the parts of a
decimal number (timestamps) and numbers under measure keys (``*_ms``, ``*_bytes``, ``count``).
It hides the values of keys that look like secrets (``password``, ``token``, ``auth``,
``authorization``, ``api_key``, ``cookie``, ``credential``...) and such values written in text
(``token=...``, ``Authorization: Bearer ...``, ``scheme://user:password@host``). Clear text only with
``[logging] clear_text_msisdn = true`` (debugging on a test system).

The level filter and the masker are mutable objects read on every line, so a configuration
reload changes them without reconfiguring structlog.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
#: A key containing one of these hides its value.
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "cookie",
    "api_key",
    "apikey",
    "private_key",
)
IDENTITY_KEYS = ("msisdn", "imsi", "imei", "called", "calling", "source_addr", "destination_addr")
#: Numbers under these key endings are measures (times, sizes, counts), not subscribers.
MEASURE_SUFFIXES = (
    "_at",
    "_s",
    "_ms",
    "_us",
    "_ns",
    "time",
    "timestamp",
    "bytes",
    "count",
    "total",
)

# "auth", "authorization", "x-auth", "auth_header"; not "author" or "authorized".
_AUTH_KEY = re.compile(r"(?:^|[^a-z])auth(?:orization|entication|n|z)?(?:$|[^a-z])")
# A secret written as key=value or "key": "value" in free text (a URL query, a header line).
_SECRET_IN_TEXT = re.compile(
    r"(?i)([\w-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|auth|authorization"
    r"|credentials?|cookie))([\"']?\s*[=:]\s*[\"']?)((?:basic|bearer|digest)\s+)?([^\s&,;\"']+)"
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")
# An IMEI (8-digit TAC, 6-digit serial, check digit; IMEISV: 2-digit version) written with
# separators: 35-209900-176148-1, 35 209900 176148 23, 35209900-176148-1. The serial is masked.
_IMEI_GROUPED = re.compile(r"(?<![\d-])(\d{2}([- ])\d{6}|\d{8})([- ])(\d{6})\3(\d{1,2})(?![\d-])")
# A run of 8 or more digits (optionally after "+"): a subscriber number of any country (E.164
# has 8-15 digits), an IMSI (14-15, any MCC: roamers too), an IMEI (15) or IMEISV (16), an
# ICCID. Shorter runs (counters, ports, years) stay, and so do the parts of a decimal number
# (a timestamp such as 1772000000.123).
_LONG_NUMBER = re.compile(r"(?<!\d)(?<!\d\.)(\d{8,})(?!\d)(?!\.\d)")
#: Nesting deeper than this is cut (a cyclic structure would recurse forever).
_MAX_DEPTH = 20


def _mask_digits(digits: str) -> str:
    """Keep a short prefix (country, MCC+MNC, TAC) and the last digits; hide at least 4.

    11 digits keep 3 + 4 (``138****5678``), 13 keep 5 + 4 (``86138****5678``), 15 keep 5 + 4
    (an IMSI: ``46000******7890``).
    """
    n = len(digits)
    tail = 4 if n >= 10 else 2
    hidden = max(4, n - 9)
    head = n - tail - hidden
    return digits[:head] + "*" * hidden + digits[n - tail :]


def mask_text(text: str) -> str:
    """Mask every subscriber number, IMSI, IMEI and written-out secret found in ``text``."""
    if ("=" in text or ":" in text) and (
        _SECRET_IN_TEXT.search(text) or _URL_PASSWORD.search(text)
    ):
        text = _URL_PASSWORD.sub(lambda m: f"{m[1]}***{m[3]}", text)
        text = _SECRET_IN_TEXT.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}***", text)
    if not any(c.isdigit() for c in text):
        return text
    text = _IMEI_GROUPED.sub(lambda m: f"{m[1]}{m[3]}******{m[3]}{m[5]}", text)
    return _LONG_NUMBER.sub(lambda m: _mask_digits(m[1]), text)


def mask_identity(value: str) -> str:
    """Mask a value known to be a subscriber identity, whatever its format."""
    masked = mask_text(value)
    if masked != value:
        return masked
    digits = value.lstrip("+")
    if len(digits) >= 8:
        return (
            value[: len(value) - len(digits)] + digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
        )
    return "*" * len(value) if value else value


def _is_secret_key(lowered: str) -> bool:
    return any(word in lowered for word in SECRET_WORDS) or bool(_AUTH_KEY.search(lowered))


class Masker:
    """structlog processor: masks subscriber identities and secrets in the whole event dict."""

    def __init__(self, clear_text: bool = False) -> None:
        self.clear_text = clear_text

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        try:
            for key, value in event_dict.items():
                event_dict[key] = self._value(key, value, 0)
        except Exception as exc:  # never raise into the caller, never let clear data through
            event = event_dict.get("event")
            return {
                "event": mask_text(event) if isinstance(event, str) else "log.unprintable",
                "level": event_dict.get("level"),
                "timestamp": event_dict.get("timestamp"),
                "masking_failed": type(exc).__name__,
            }
        return event_dict

    def _value(self, key: Any, value: Any, depth: int) -> Any:
        if isinstance(key, str):
            lowered = key.lower()
            if _is_secret_key(lowered) and not (
                value is None or (isinstance(value, str) and not value)
            ):
                return "***"
            if not self.clear_text and isinstance(value, str | int) and not isinstance(value, bool):
                if any(word in lowered for word in IDENTITY_KEYS):
                    return mask_identity(str(value))
            if isinstance(value, int | float) and lowered.endswith(MEASURE_SUFFIXES):
                return value
        if value is None or isinstance(value, bool):
            return value
        if depth > _MAX_DEPTH:  # a cyclic or absurdly deep structure
            return "<nested too deep>"
        if isinstance(value, Mapping):
            return {self._key(k): self._value(k, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(None, v, depth + 1) for v in value]
        if self.clear_text:
            return value
        if isinstance(value, str):
            return mask_text(value)
        if isinstance(value, int | float):
            if isinstance(value, float) and not value.is_integer():
                return value  # a measure or a timestamp (or inf, nan), not a subscriber number
            if abs(value) < 10**7:  # up to 7 digits: counters
                return value
            digits = str(int(value))
            masked = mask_text(digits)
            return masked if masked != digits else value
        # Anything else is rendered with str() (JSON default=str): mask that text.
        try:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"
        return mask_text(text)

    def _key(self, key: Any) -> Any:
        if self.clear_text:
            return key
        if isinstance(key, str):
            return mask_text(key)
        if isinstance(key, int) and not isinstance(key, bool) and key >= 10**10:
            return mask_text(str(key))
        return key


class LevelFilter:
    """structlog processor: drops lines below the level of their ``plugin`` (or the global one)."""

    def __init__(self, level: str = "info", plugin_levels: Mapping[str, str] | None = None) -> None:
        self.set(level, plugin_levels or {})

    def set(self, level: str, plugin_levels: Mapping[str, str]) -> None:
        self.level = LEVELS[level]
        self.plugin_levels = {name: LEVELS[lvl] for name, lvl in plugin_levels.items()}

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        level = LEVELS.get(event_dict.get("level", "info"), 20)
        plugin = event_dict.get("plugin")
        threshold = (
            self.plugin_levels.get(plugin, self.level) if isinstance(plugin, str) else self.level
        )
        if level < threshold:
            raise structlog.DropEvent
        return event_dict


def _normalise_level(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    level = event_dict.get("level", method)
    level = {"warn": "warning", "exception": "error", "fatal": "critical", "msg": "info"}.get(
        level, level
    )
    event_dict["level"] = level
    return event_dict


class _StdlibBridge(logging.Handler):
    """Sends standard-library log records through the structlog processors."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            method = record.levelname.lower()
            method = {"warn": "warning", "fatal": "critical"}.get(method, method)
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            log = structlog.get_logger()
            getattr(log, method if method in LEVELS else "info")(record.getMessage(), **fields)
        except Exception:
            self.handleError(record)


_level_filter = LevelFilter()
_masker = Masker()


def configure_logging(
    level: str = "info",
    *,
    fmt: str = "auto",
    plugin_levels: Mapping[str, str] | None = None,
    clear_text_msisdn: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib bridge. Safe to call again (tests, reload)."""
    stream = stream or sys.stdout
    _level_filter.set(level, plugin_levels or {})
    _masker.clear_text = clear_text_msisdn
    use_console = fmt == "console" or (
        fmt == "auto" and hasattr(stream, "isatty") and stream.isatty()
    )
    renderer: Any
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty() if hasattr(stream, "isatty") else False
        )
        # Rendered to text before the masker (the renderer's own formatter would run after it).
        tracebacks: list[Any] = [structlog.processors.ExceptionRenderer()]
    else:
        renderer = structlog.processors.JSONRenderer(default=str)
        # No local variables in tracebacks: their reprs could carry secrets or subscriber data.
        tracebacks = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _normalise_level,
            _level_filter,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            *tracebacks,
            _masker,
            renderer,
        ],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StdlibBridge):
            root.removeHandler(handler)
    root.addHandler(_StdlibBridge())
    stdlib_floor = min([LEVELS[level], *(LEVELS[lv] for lv in (plugin_levels or {}).values())])
    root.setLevel(stdlib_floor)


def configure_from_config(
    logging_config: Any, *, stream: TextIO | None = None, force_format: str | None = None
) -> None:
    """Apply a :class:`gateway.config.LoggingConfig`."""
    configure_logging(
        logging_config.level,
        fmt=force_format or logging_config.format,
        plugin_levels=logging_config.plugin_levels,
        clear_text_msisdn=logging_config.clear_text_msisdn,
        stream=stream,
    )


def update_levels(logging_config: Any) -> None:
    """Apply new levels and the clear-text flag from a reloaded configuration."""
    _level_filter.set(logging_config.level, logging_config.plugin_levels)
    _masker.clear_text = logging_config.clear_text_msisdn
    floor = min(
        [LEVELS[logging_config.level], *(LEVELS[v] for v in logging_config.plugin_levels.values())]
    )
    logging.getLogger().setLevel(floor)
