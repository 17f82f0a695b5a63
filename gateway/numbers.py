"""One number form: every MSISDN becomes E.164 digits where it enters the gateway.

A subscriber's number arrives written in many ways: ``13500000001`` (national, mobile),
``013500000001`` / ``010 1234 5678`` (national with the trunk prefix ``0``),
``+86 135-0000-0001``, ``0086 13500000001``, ``8613500000001``. Contact control compares
numbers as strings, so two spellings of one subscriber would be two subscribers: a number on
the blacklist in one spelling would be contacted in another. Every entrance (do-not-disturb
lists and admin commands, profile files, campaign target lists, signaling, the contact
requests that lead to an SMS) calls :meth:`NumberPlan.normalise`, which returns the E.164
digits without ``+`` (``8613500000001``) or raises :class:`NumberError`. A number that cannot
be normalised is refused there, never compared raw.

The rules, in order (the ``[numbers]`` section of gateway.toml sets the prefixes and limits)::

    [numbers]
    country_code = "86"            # put before national numbers
    national_prefix = "0"          # trunk prefix of national numbers ("" if there is none)
    international_prefix = "00"    # dialled before a country code ("+" is always accepted)
    mobile_length = 11             # bare national mobile numbers: this many digits... (0: none)
    mobile_prefixes = ["1"]        # ...starting with one of these
    min_digits = 8                 # length limits of the E.164 result
    max_digits = 15                # at most 15 (ITU-T E.164)

1. Surrounding whitespace is dropped. Inside, only ASCII digits ``0-9``, one leading ``+`` and
   the separators space, ``-``, ``.``, ``(`` and ``)`` are allowed; separators are removed.
   Anything else is refused, including digits of other scripts (fullwidth digits U+FF10..FF19,
   Arabic-Indic U+0660..0669) that Python's ``str.isdigit`` would accept.
2. ``+`` then digits: international; the digits are the E.164 number.
3. The international prefix then digits: the same.
4. The national prefix then digits: national; the country code is put before the rest.
5. Bare digits of ``mobile_length`` starting with one of ``mobile_prefixes``: a national mobile
   number written without the trunk prefix, as Chinese mobile numbers always are
   (``13500000001`` -> ``8613500000001``).
6. Any other bare digits: already E.164 without ``+`` (``8613500000001``, a roamer's
   ``447700900123``).
7. The result must not start with ``0`` and must have ``min_digits`` to ``max_digits`` digits.
   A result that rules 3 to 6 would read back as another number is refused as ambiguous: an
   11-digit North American ``+1 312 555 0123`` when ``mobile_prefixes`` has ``"1"`` (its
   stored form ``13125550123`` is also a national mobile number), so the form stays stable.
   Set ``mobile_length = 0`` for a gateway that must serve such numbers (national mobile
   numbers then need the trunk prefix or the country code).

So the result is stable: normalising a normalised number gives it back unchanged.

Where the plan comes from: the ``numbers`` default plugin parses ``[numbers]`` and, when the
daemon opens its stores (before any other component), makes it the *active* plan of the
process with :func:`use_plan`; :func:`active_plan` is what the entrances use when they are not
given a plan. A process serves one numbering plan; a change of ``[numbers]`` needs a restart
(the lists on disk were normalised with the old one), and ``reload`` says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs

from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl

#: The separators removed from a number; any other character that is not an ASCII digit (or a
#: leading ``+``) makes the number invalid.
SEPARATORS = " -.()"
_DIGITS = frozenset("0123456789")
_ALLOWED = _DIGITS | frozenset(SEPARATORS)
_STRIP = str.maketrans("", "", SEPARATORS)
#: Longest input looked at: a number with separators, not a line of a file.
MAX_INPUT_CHARS = 40


class NumberError(ValueError):
    """Raised by :meth:`NumberPlan.normalise` for a number it cannot bring to E.164 form.

    The message says why, without repeating the number (callers name the line or the
    argument, and mask the number if they show it).
    """


class ColumnNumberError(NumberError):
    """Raised by :meth:`NumberPlan.normalise_column`; ``offset`` is the bad value's index."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset


@attrs.frozen(kw_only=True)
class NumberPlan:
    """The numbering plan of the network the gateway serves; see the module docstring."""

    country_code: str = "86"
    national_prefix: str = "0"
    international_prefix: str = "00"
    mobile_length: int = 11
    mobile_prefixes: tuple[str, ...] = ("1",)
    min_digits: int = 8
    max_digits: int = 15

    def normalise(self, text: str) -> str:
        """E.164 digits (no ``+``) for ``text``; :class:`NumberError` when it has none."""
        if not isinstance(text, str):
            raise NumberError(f"a number must be text, not {type(text).__name__}")
        text = text.strip()
        if not text:
            raise NumberError("empty number")
        if len(text) > MAX_INPUT_CHARS:
            raise NumberError(f"longer than {MAX_INPUT_CHARS} characters")
        plus = text[0] == "+"
        body = text[1:] if plus else text
        if not _ALLOWED.issuperset(body):
            raise NumberError(
                "only ASCII digits 0-9, a leading '+' and the separators space - . ( ) are allowed"
            )
        digits = body.translate(_STRIP)
        if not digits:
            raise NumberError("no digits")
        e164 = digits if plus else self._read_bare(digits)
        if e164[0] == "0":
            raise NumberError("a country code cannot start with 0")
        if not self.min_digits <= len(e164) <= self.max_digits:
            raise NumberError(
                f"{len(e164)} digits after normalisation; "
                f"allowed {self.min_digits} to {self.max_digits}"
            )
        if self._read_bare(e164) != e164:
            raise NumberError(
                "ambiguous: its E.164 digits read without '+' are another number "
                "(a national one: see [numbers] mobile_length and the prefixes)"
            )
        return e164

    def normalise_column(self, column: list[bytes]) -> list[int]:
        """A column of a bulk file (ASCII bytes) as integer E.164 keys, for profile indexes.

        The same result as :meth:`normalise` on each value; common values (bare national
        mobiles, bare E.164 digits) take a fast path, the rest go through :meth:`normalise`.
        Raises :class:`ColumnNumberError` with the offset of the first bad value.
        """
        out: list[int] = []
        append = out.append
        fast = self.international_prefix[0] == "0" and self.national_prefix[:1] in ("", "0")
        mobile_length = self.mobile_length
        national_base = int(self.country_code) * 10**mobile_length
        prefixes = tuple(p.encode() for p in self.mobile_prefixes)
        low, high = self.min_digits, self.max_digits
        for offset, value in enumerate(column):
            n = len(value)
            if fast and value.isdigit() and value[:1] != b"0":
                if n == mobile_length and value.startswith(prefixes):
                    append(national_base + int(value))
                    continue
                if low <= n <= high and n != mobile_length:
                    append(int(value))
                    continue
            try:
                append(int(self.normalise(value.decode("ascii"))))
            except UnicodeDecodeError:
                raise ColumnNumberError(offset, "only ASCII digits are allowed") from None
            except NumberError as exc:
                raise ColumnNumberError(offset, str(exc)) from None
        return out

    def key(self, text: str | None) -> int:
        """The integer key of a number in any accepted form; 0 when absent or not a number."""
        if not text:
            return 0
        try:
            return int(self.normalise(text))
        except NumberError:
            return 0

    def is_normal(self, digits: str) -> bool:
        """True when ``digits`` is already in the form :meth:`normalise` returns."""
        try:
            return self.normalise(digits) == digits
        except NumberError:
            return False

    def _read_bare(self, digits: str) -> str:
        """Rules 3 to 6: digits written without ``+``."""
        if digits.startswith(self.international_prefix):
            return digits[len(self.international_prefix) :] or "0"
        if self.national_prefix and digits.startswith(self.national_prefix):
            return self.country_code + digits[len(self.national_prefix) :]
        if (
            self.mobile_length > 0
            and len(digits) == self.mobile_length
            and digits.startswith(self.mobile_prefixes)
        ):
            return self.country_code + digits
        return digits


DEFAULT_PLAN = NumberPlan()
_active: list[NumberPlan] = [DEFAULT_PLAN]


def active_plan() -> NumberPlan:
    """The plan of this process (``[numbers]`` of the running daemon; else the default)."""
    return _active[-1]


def normalise(text: str, plan: NumberPlan | None = None) -> str:
    """``(plan or active_plan()).normalise(text)``."""
    return (plan or _active[-1]).normalise(text)


def e164_request(request: Any) -> Any:
    """``request`` (a ContactRequest) with its MSISDN in E.164 form; NumberError if it has none.

    For contact requests built outside the core (matcher plugins): the SMS destination and
    the key contact control compares must be the one form, whatever the plugin wrote.
    """
    msisdn = request.msisdn
    normal = _active[-1].normalise(msisdn)
    return request if normal == msisdn else attrs.evolve(request, msisdn=normal)


def mask(text: str) -> str:
    """A short masked excerpt of something that looks like a number, for error messages.

    At most the first 3 and last 2 characters of the first 20 are shown (``135****01``);
    nothing of a text that is not made of digits, ``+`` and separators.
    """
    text = text.strip()[:20]
    if not text or not (_ALLOWED | {"+"}).issuperset(text):
        return "(not a number)"
    if len(text) <= 5:
        return "*" * len(text)
    return f"{text[:3]}****{text[-2:]}"


# ------------------------------------------------------------------------------------------
# The [numbers] section and the default plugin
# ------------------------------------------------------------------------------------------


def parse_numbers_config(table: Mapping[str, Any], key: str = "numbers") -> NumberPlan:
    """Parse ``[numbers]``; raises ConfigError naming every bad key."""
    r = TableReader(table, key)
    d = DEFAULT_PLAN
    cc = r.str("country_code", d.country_code)
    national = r.str("national_prefix", d.national_prefix)
    international = r.str("international_prefix", d.international_prefix)
    mobile_length = r.int("mobile_length", d.mobile_length, min=0, max=15)
    mobile_prefixes = r.str_list("mobile_prefixes", d.mobile_prefixes)
    min_digits = r.int("min_digits", d.min_digits, min=1, max=15)
    max_digits = r.int("max_digits", d.max_digits, min=1, max=15)
    if cc is not None and not (1 <= len(cc) <= 3 and _digits(cc) and cc[0] != "0"):
        r.problem("country_code", f"must be 1 to 3 ASCII digits not starting with 0, got {cc!r}")
    if national is not None and not (national == "" or (_digits(national) and len(national) <= 3)):
        r.problem("national_prefix", f"must be up to 3 ASCII digits or empty, got {national!r}")
    if international is not None and not (_digits(international) and len(international) <= 4):
        r.problem("international_prefix", f"must be 1 to 4 ASCII digits, got {international!r}")
    if national and international and national == international:
        r.problem("international_prefix", "must differ from national_prefix")
    for prefix in mobile_prefixes or ():
        if not _digits(prefix):
            r.problem("mobile_prefixes", f"each prefix must be ASCII digits, got {prefix!r}")
    if mobile_length and not mobile_prefixes:
        r.problem("mobile_prefixes", "needed when mobile_length is not 0")
    if min_digits is not None and max_digits is not None and min_digits > max_digits:
        r.problem("min_digits", f"is more than max_digits ({max_digits})")
    r.finish()
    return NumberPlan(
        country_code=cc,
        national_prefix=national,
        international_prefix=international,
        mobile_length=mobile_length,
        mobile_prefixes=tuple(mobile_prefixes),
        min_digits=min_digits,
        max_digits=max_digits,
    )


def _digits(text: str) -> bool:
    return bool(text) and _DIGITS.issuperset(text)


def plan_of(gateway: Any) -> NumberPlan:
    """The parsed ``[numbers]`` section of ``gateway.config`` (the default when absent)."""
    sections = getattr(getattr(gateway, "config", None), "sections", None) or {}
    plan = sections.get("numbers")
    return plan if isinstance(plan, NumberPlan) else DEFAULT_PLAN


@asynccontextmanager
async def use_plan(plan: NumberPlan) -> AsyncIterator[NumberPlan]:
    """Make ``plan`` the active plan of the process while the block runs."""
    _active.append(plan)
    try:
        yield plan
    finally:
        _active.remove(plan)


@hookimpl
def gateway_config_sections() -> Iterable[SectionSpec]:
    return [SectionSpec(name="numbers", parse=parse_numbers_config, optional=True, top_level=True)]


@hookimpl
def gateway_stores(gateway: Any) -> Iterable[Any]:
    return [use_plan(plan_of(gateway))]


@hookimpl
def gateway_reload(gateway: Any) -> None:
    if plan_of(gateway) != active_plan():
        import structlog

        structlog.get_logger().warning("numbers.reload_needs_restart", section="numbers")
