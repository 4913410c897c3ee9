"""The one interface every quality filter implements.

A filter is a named family of rules over a `TextView` (datatrove's `BaseFilter` shape): `apply`
returns the view to pass on (the same one, or one with lines removed) or the reason to drop the
document. Reasons are stable strings `"<filter>:<rule>"`; `QualityFilters` runs the enabled
filters in order and the first reason wins, so every filtered document has exactly one reason.
Most filters only accept or reject: they implement `check` and inherit `apply`. Rules written
for prose (the published Gopher, C4 and FineWeb heuristics) see the text's prose only, without
its fenced code blocks (`TextView.prose`); a filter about the whole text sets
`measures_prose = False`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from smelt.corpus.filters.text_utils import TextView


class Filter(ABC):
    """A named family of rules that keeps, trims or drops a document."""

    name: str

    @abstractmethod
    def apply(self, view: TextView) -> TextView | str:
        """The view to pass on, or the reason (`"<name>:<rule>"`) to drop the document."""

    def reason(self, rule: str) -> str:
        """The stable reason string for one of this filter's rules."""
        return f"{self.name}:{rule}"


class DocumentFilter(Filter):
    """A filter that keeps documents unchanged or drops them whole."""

    measures_prose = True  # check() sees `view.prose`: code listings are not judged as prose

    @abstractmethod
    def check(self, view: TextView) -> str | None:
        """The first rule the text breaks (without the filter's name), or None."""

    def apply(self, view: TextView) -> TextView | str:
        rule = self.check(view.prose if self.measures_prose else view)
        return view if rule is None else self.reason(rule)
