"""The answer for one photo, readable when printed (as the CLI's `identify` prints it) and as a dict (as its --json)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ._native import snakeid as ffi

SOURCE_NAMES = {ffi.CountrySource.CHOSEN: "chosen", ffi.CountrySource.PHOTO_GPS: "photo_gps",
                ffi.CountrySource.DEVICE_LOCATION: "device_location"}
VERDICT_NAMES = {ffi.SnakeVerdict.SNAKE: "snake", ffi.SnakeVerdict.POSSIBLE: "possible", ffi.SnakeVerdict.NO_SNAKE: "none"}


class Answer:
    """One photo's answer. Every field of the library's record is an attribute (``snake_verdict``,
    ``venomous_warning``, ``warning_species``, ``uncertain``, ``predictions``, ``genus``, ``country``,
    ``timings_ms``...); ``verdict`` is the verdict's name (``"snake"``, ``"possible"``, ``"none"``),
    ``country_source`` where the country came from (``"chosen"``, ``"photo_gps"``, ``"device_location"``) and
    ``photo`` the file it came from, when it came from one. ``str(answer)`` reads as the CLI's answer; ``answer.to_dict()`` holds
    the same fields as its JSON."""

    __slots__ = ("_record", "photo")

    def __init__(self, record: Any, photo: Optional[str] = None):
        self._record = record
        self.photo = photo

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(vars(self._record)))

    def __eq__(self, other: object) -> bool:
        """The same answer: everything but the timings and where the photo came from."""
        return isinstance(other, Answer) and _comparable(self) == _comparable(other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def verdict(self) -> str:
        return VERDICT_NAMES[self._record.snake_verdict]

    @property
    def country_source(self) -> Optional[str]:
        """Where the country came from: ``"chosen"``, ``"photo_gps"``, ``"device_location"``, or None."""
        s = self._record.country_source
        return None if s is None else SOURCE_NAMES[s]

    def __repr__(self) -> str:
        r = self._record
        top = f", top {r.predictions[0].label} {r.predictions[0].probability:.0%}" if r.predictions and self.verdict != "none" else ""
        warn = ", VENOMOUS warning" if r.venomous_warning else ""
        where = f" {self.photo!r}" if self.photo else ""
        return f"<snakeid.Answer{where}: {self.verdict} ({r.snake_probability:.0%}){top}{warn}>"

    def __str__(self) -> str:
        r = self._record
        head = f"{self.photo}: " if self.photo else ""
        source = {"photo_gps": " from the photo's GPS", "device_location": " from the location given"}.get(self.country_source or "", "")
        place = (f", country {r.country}{source}" + (" (prior applied)" if r.prior_applied else " (not in this bundle's prior: none applied)")
                 if r.country else "")
        p_snake = f"{r.snake_probability * 100:.0f}%"
        if self.verdict == "none":
            # "None" reads as none: no species, so no VENOMOUS beside "no snake" (issue 33).
            return (f"{head}no snake detected ({p_snake}){place}\n"
                    "  if there is a snake, photograph it whole, closer and in focus, and try again.")
        lines = [f"{head}snake ({p_snake}){place}" if self.verdict == "snake"
                 else f"{head}possibly a snake ({p_snake}){place}; if it is one, the closest species are:"]
        width = max((len(p.label) + len(p.scientific_name) + 3 for p in r.predictions), default=0)
        for i, p in enumerate(r.predictions, 1):
            name = f"{p.label} ({p.scientific_name})"
            lines.append(f"  {i:>2}. {name:<{width}}  {p.probability * 100:>5.1f}%{'  VENOMOUS' if p.venomous else ''}")
        if r.genus is not None:
            lines.append(f"  genus: most likely {r.genus.genus} ({r.genus.probability * 100:.0f}%"
                         f"{', venomous genus' if r.genus.venomous else ''})")
        if r.venomous_warning:
            names = ", ".join(f"{p.label} {p.probability * 100:.0f}%" for p in r.warning_species)
            lines.append(f"  WARNING: possibly venomous ({names}). Treat the bite as venomous and seek medical care now.")
        if r.uncertain:
            lines.append("  uncertain: the model is not sure; treat as venomous and seek care.")
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        """The answer as plain data, with the key names of ``snakeid identify --json``."""
        r = self._record
        d: Dict[str, Any] = {"image": self.photo} if self.photo else {}
        d.update(
            snake_detected=r.snake_detected, snake_verdict=self.verdict, snake_probability=r.snake_probability,
            lookalike_probability=r.lookalike_probability, view=r.view, views_run=r.views_run,
            venomous_probability=r.venomous_probability, venomous_warning=r.venomous_warning,
            warning_species=[_prediction(p) for p in r.warning_species], uncertain=r.uncertain, country=r.country,
            country_source=self.country_source,
            prior_applied=r.prior_applied, backend=r.backend,
            genus=None if r.genus is None else {"genus": r.genus.genus, "probability": r.genus.probability, "venomous": r.genus.venomous},
            predictions=[_prediction(p) for p in r.predictions],
            timings_ms={k: getattr(r.timings_ms, k) for k in ("decode", "preprocess", "inference", "postprocess", "total")},
        )
        return d


def _comparable(a: Answer) -> Dict[str, Any]:
    d = a.to_dict()
    d.pop("timings_ms")
    d.pop("image", None)
    return d


def _prediction(p: Any) -> Dict[str, Any]:
    return {"class_index": p.class_index, "label": p.label, "scientific_name": p.scientific_name,
            "probability": p.probability, "venomous": p.venomous}


def _readable_records() -> None:
    """The generated records print every field but read poorly inside lists; give the ones a user prints a short
    repr (the generated module itself is left as generated)."""
    ffi.Prediction.__repr__ = lambda p: (f"<Prediction {p.label} ({p.scientific_name}) {p.probability:.1%}"
                                         f"{' VENOMOUS' if p.venomous else ''}>")
    ffi.GenusAnswer.__repr__ = lambda g: f"<GenusAnswer {g.genus} {g.probability:.0%}{' venomous' if g.venomous else ''}>"
    ffi.Species.__repr__ = lambda s: f"<Species {s.label} ({s.scientific_name}){' VENOMOUS' if s.venomous else ''}>"


_readable_records()
