"""The OpenAI-compatible HTTP API over the engine (FastAPI), and the chat page at `/`.

    GET  /                       a minimal chat page (streams from the endpoints below)
    GET  /health                 engine counters: active and waiting requests, completions
    GET  /v1/models              the one model served
    POST /v1/chat/completions    ChatML conversations; `stream: true` answers with SSE
    POST /v1/completions         plain-text continuation (the only mode of a base model)

Requests never block the event loop: they are queued on the engine, whose thread reports
tokens back through `call_soon_threadsafe`. A streaming client that goes away cancels its
request (Starlette cancels the response on `http.disconnect`; the stream's `finally` frees the
row), and so does a non-streaming one, which is polled for disconnection while it waits.
Every error, including FastAPI's own validation and routing errors, has OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from smelt.chat import TextStream, as_messages
from smelt.errors import InputError
from smelt.serving.chat_model import ChatModel
from smelt.serving.engine import Engine, Event, Sampling
from smelt.serving.engine import Request as EngineRequest
from smelt.serving.protocol import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    SamplingFields,
)

DISCONNECT_POLL_S = 0.25


@dataclass
class _Job:
    """One request in flight: the engine's handle, its event queue, its text so far."""

    request: EngineRequest
    events: asyncio.Queue[Event]
    text: TextStream
    prompt_tokens: int

    @property
    def usage(self) -> dict[str, int]:
        completion = self.request.generated
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    async def pieces(self) -> AsyncIterator[tuple[str, str | None]]:
        """(new text, None) while generating, then (last text, finish reason). Events that
        queued up while the client was being served are taken together, so a slow client
        gets fewer, larger chunks instead of falling behind."""
        while True:
            events = [await self.events.get()]
            while not self.events.empty():
                events.append(self.events.get_nowait())
            delta = ""
            for event in events:
                if event.token is not None:
                    delta += self.text.push(event.token)
                    if self.text.stopped:  # a stop string: end here, free the row
                        self.request.cancel("stop")
                        yield delta, "stop"
                        return
                    continue
                if event.finish == "error":
                    raise ApiError(500, f"generation failed: {event.error}", kind="server_error")
                yield delta + self.text.finish(), "length" if event.finish == "length" else "stop"
                return
            if delta:
                yield delta, None


def create_app(chat: ChatModel, engine: Engine) -> FastAPI:
    """The ASGI app; its lifespan starts and stops the engine thread."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.close()

    app = FastAPI(
        title="smelt", summary="OpenAI-compatible API of a smelt model", lifespan=lifespan
    )
    created = int(time.time())
    _add_error_handlers(app)

    def check_model(name: str | None) -> None:
        if name is not None and name != chat.name:
            raise ApiError(
                404,
                f"The model '{name}' does not exist; this server serves '{chat.name}'",
                param="model",
                code="model_not_found",
            )

    def model_card() -> dict[str, Any]:
        return {
            "id": chat.name,
            "object": "model",
            "created": created,
            "owned_by": "smelt",
            "max_model_len": chat.context,
            "chat": chat.is_chat,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("smelt.serving").joinpath("static/index.html").read_text("utf-8")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": chat.name, **asdict(engine.stats)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        check_model(name)
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, http: Request) -> Any:
        check_model(body.model)
        body.refuse_unsupported()
        if not chat.is_chat:
            raise ApiError(
                400,
                f"'{chat.name}' is a base model (its run has no chat template): use "
                "/v1/completions for plain continuation, or fine-tune it with `smelt sft`",
                param="messages",
                code="model_not_chat",
            )
        try:
            prompt = chat.chat_prompt(as_messages(body.messages))
        except InputError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        limit = body.max_completion_tokens or body.max_tokens
        job = _submit(chat, engine, body, prompt, limit, "messages", chat_stops=True)
        ident, name = f"chatcmpl-{uuid.uuid4().hex}", chat.name

        def chunk(text: str | None, reason: str | None) -> dict[str, Any]:
            delta = {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return _envelope(ident, "chat.completion.chunk", name, [choice])

        if body.stream:
            opening = chunk("", None)
            opening["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            return _sse(job, chunk, opening, _wants_usage(body))
        text, reason = await _complete(job, http)
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
        return {**_envelope(ident, "chat.completion", name, [choice]), "usage": job.usage}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, http: Request) -> Any:
        check_model(body.model)
        body.refuse_unsupported()
        if body.echo or body.suffix:
            raise ApiError(400, "echo and suffix are not supported", param="echo")
        prompt = _prompt_ids(chat, body.prompt)
        job = _submit(
            chat, engine, body, prompt, body.max_tokens, "prompt", chat_stops=chat.is_chat
        )
        ident, name = f"cmpl-{uuid.uuid4().hex}", chat.name

        def chunk(text: str | None, reason: str | None) -> dict[str, Any]:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}
            return _envelope(ident, "text_completion", name, [choice])

        if body.stream:
            return _sse(job, chunk, None, _wants_usage(body))
        text, reason = await _complete(job, http)
        return {**chunk(text, reason), "usage": job.usage}

    return app


# ---- requests -----------------------------------------------------------------------------


def _wants_usage(body: SamplingFields) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def _prompt_ids(chat: ChatModel, prompt: str | list[str] | list[int]) -> list[int]:
    """A completion prompt as ids: text, a list holding one text, or token ids."""
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        vocab = chat.opened.config.vocab_size
        if any(not 0 <= t < vocab for t in prompt):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        return list(prompt)
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise ApiError(400, "send one prompt per request", param="prompt")
        prompt = prompt[0]
    try:
        return chat.text_prompt(prompt)
    except InputError as exc:
        raise ApiError(400, str(exc), param="prompt") from None


def _submit(
    chat: ChatModel,
    engine: Engine,
    body: SamplingFields,
    prompt: list[int],
    limit: int | None,
    prompt_field: str,
    chat_stops: bool,
) -> _Job:
    """Check the context, then queue the request on the engine."""
    context, used = chat.context, len(prompt)
    wanted = limit if limit is not None else context - used
    if used >= context or used + wanted > context:
        raise ApiError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{used + max(wanted, 0)} tokens ({used} in the {prompt_field}, {max(wanted, 0)} in "
            "the completion). Please reduce the length of the "
            f"{prompt_field} or completion.",
            param=prompt_field,
            code="context_length_exceeded",
        )
    sampling = Sampling(
        max_new_tokens=wanted,
        temperature=body.temperature,
        top_k=body.top_k if body.top_k and body.top_k > 0 else None,
        top_p=body.top_p if body.top_p < 1.0 else None,
        repetition_penalty=body.repetition_penalty,
        stop_ids=() if body.ignore_eos else tuple(chat.stop_ids(chat_stops)),
        seed=body.seed,
    )
    stops = body.stop_strings()
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Event] = asyncio.Queue()

    def sink(event: Event) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    try:
        request = engine.submit(prompt, sampling, sink)
    except InputError as exc:
        raise ApiError(400, str(exc), param=prompt_field) from None
    return _Job(request, events, TextStream(chat.tokenizer, stops), used)


async def _complete(job: _Job, http: Request) -> tuple[str, str]:
    """The whole reply; cancels the request if the client disconnects while waiting."""

    async def watch() -> None:
        while not await http.is_disconnected():
            await asyncio.sleep(DISCONNECT_POLL_S)
        job.request.cancel()

    watcher = asyncio.create_task(watch())
    parts, reason = [], "stop"
    try:
        async for delta, finish in job.pieces():
            parts.append(delta)
            reason = finish or reason
    finally:
        watcher.cancel()
        job.request.cancel()  # a no-op once finished; frees the row if we were cancelled
    return "".join(parts), reason


def _sse(job: _Job, chunk: Any, opening: dict[str, Any] | None, usage: bool) -> StreamingResponse:
    """Server-sent events: the opening chunk, one chunk per text piece, one with the finish
    reason, the usage when asked for, then [DONE]. `chunk(text or None, reason)` shapes them."""

    async def events() -> AsyncIterator[str]:
        try:
            if opening is not None:
                yield _data(opening)
            async for text, reason in job.pieces():
                if text:
                    yield _data(chunk(text, None))
                if reason:
                    yield _data(chunk(None, reason))
            if usage:
                yield _data({**chunk(None, None), "choices": [], "usage": job.usage})
            yield "data: [DONE]\n\n"
        except ApiError as exc:
            yield _data(exc.body())
        finally:
            job.request.cancel()  # the client left mid-stream: free its row now

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _data(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _envelope(ident: str, kind: str, model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": ident,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }


# ---- errors -------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        if first.get("type") == "json_invalid":
            error = ApiError(
                400, f"We could not parse the JSON body of your request: {first['msg']}"
            )
        else:
            loc = [str(p) for p in first.get("loc", ()) if p != "body"]
            param = loc[0] if loc else None
            where = ".".join(loc) or "body"
            error = ApiError(400, f"Invalid '{where}': {first['msg']}", param=param)
        return JSONResponse(error.body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        error = ApiError(exc.status_code, str(exc.detail))
        return JSONResponse(error.body(), status_code=exc.status_code)
