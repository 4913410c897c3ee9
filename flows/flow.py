"""`flow`: Prefect's flow decorator, with a flow run's parameters recorded through pydantic.

Why: Prefect records the parameters of every flow run it creates with FastAPI's
`jsonable_encoder`, and the first flow of a process imports FastAPI for it: 0.17-0.27 s of
every `smelt` command, 2-3% of a 9 s corpus build (BENCHMARKS.md, "Corpus build"). smelt's
parameters are pydantic models and plain values, which pydantic-core turns into the same JSON
form with nothing more to import; anything it cannot encode goes to Prefect's own encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Flow
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture
from pydantic_core import PydanticSerializationError, to_jsonable_python

P = ParamSpec("P")
R = TypeVar("R")


class SmeltFlow(Flow[P, R]):
    """A Prefect `Flow` whose run parameters are encoded by pydantic-core."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if any(isinstance(value, PrefectFuture | State) for value in parameters.values()):
            return super().serialize_parameters(parameters)
        try:
            return {
                key: to_jsonable_python(value, by_alias=True) for key, value in parameters.items()
            }
        except PydanticSerializationError:
            return super().serialize_parameters(parameters)

    def with_options(self, *args: Any, **options: Any) -> SmeltFlow[P, R]:
        copy = super().with_options(*args, **options)
        copy.__class__ = type(self)  # Prefect's copy is a plain Flow
        return copy


def flow(**options: Any) -> Callable[[Callable[P, R]], SmeltFlow[P, R]]:
    """`@flow(name=...)` as with Prefect (the keyword form), making a `SmeltFlow`."""
    return lambda fn: SmeltFlow(fn=fn, **options)
