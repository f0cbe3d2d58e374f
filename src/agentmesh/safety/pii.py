"""PII detectors: e-mail, phone, card numbers (Luhn), IBAN (mod 97) and API-key shapes.

One RE2 pattern finds candidates in a single linear pass; cards and IBANs are then
confirmed by their check digits, so a random digit string is not a card, and card and
phone numbers must stand alone (not inside a UUID or a longer token).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from agentmesh.safety.patterns import Pattern, compile_pattern

_SHAPES = {
    "email": r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}",
    "card": r"(?:^|[^\w.-])(?P<card_v>(?:\d[ -]?){12,18}\d)(?:$|[^\w-])",
    "iban": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
    "phone": r"(?:^|[^\w.+-])(?P<phone_v>(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
    r"\d{3,4}[ .-]\d{3,4}|\+\d{8,14})(?:$|[^\w-])",
    "api_key": r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{36}\b|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"
    r"|\bAIza[0-9A-Za-z_-]{35}\b|\bsk-[A-Za-z0-9_-]{32,}\b",
}
ORDER = ("email", "api_key", "iban", "card", "phone")  # earlier names win an overlap


@dataclasses.dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    total, double = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


class PiiDetector:
    """Finds the enabled kinds of PII in a string."""

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = tuple(k for k in ORDER if k in set(kinds))
        self._pattern: Pattern | None = (
            compile_pattern("|".join(f"(?P<{k}>{_SHAPES[k]})" for k in self.kinds))
            if self.kinds
            else None
        )
        self._index: dict[str, int] = (
            dict(self._pattern.groupindex) if self._pattern is not None else {}  # type: ignore[attr-defined]
        )

    def find(self, text: str) -> list[PiiMatch]:
        """Confirmed matches, left to right (``text`` must be valid UTF-8 text)."""
        if self._pattern is None or self._pattern.search(text) is None:
            return []
        found: list[PiiMatch] = []
        for m in self._pattern.finditer(text):
            kind = next((k for k in self.kinds if m.group(k) is not None), None)
            if kind is None:
                continue
            core = f"{kind}_v" if kind in ("card", "phone") else kind
            value = m.group(core)
            if kind == "card":
                digits = value.replace(" ", "").replace("-", "")
                if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
                    continue
            elif kind == "iban" and not iban_ok(value):
                continue
            index = self._index[core]
            found.append(PiiMatch(kind, m.start(index), m.end(index)))
        return found

    @staticmethod
    def redact(text: str, matches: list[PiiMatch]) -> str:
        out, last = [], 0
        for m in matches:
            out.append(text[last : m.start])
            out.append(f"[REDACTED:{m.kind}]")
            last = m.end
        out.append(text[last:])
        return "".join(out)
