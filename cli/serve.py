"""`smelt serve`: a checkpoint behind an OpenAI-compatible HTTP API, with a chat page at `/`."""

from __future__ import annotations

import argparse
import socket


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve a checkpoint over an OpenAI-compatible HTTP API"
    )
    serve.add_argument(
        "--checkpoint",
        required=True,
        metavar="URI",
        help="a run's output URI (newest complete checkpoint) or a step directory",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--model-name", metavar="NAME", help="the model id clients send (default: the run's name)"
    )
    serve.add_argument("--max-batch", type=int, default=8, help="requests decoded together")
    serve.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="the HTTP server's log level",
    )
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from smelt.serving import Engine, load_chat_model
    from smelt.serving.api import create_app

    _check_port(args.host, args.port)
    chat = load_chat_model(args.checkpoint, args.device, args.model_name)
    app = create_app(chat, Engine(chat.model, max_batch=args.max_batch))
    mode = "chat" if chat.is_chat else "base model, /v1/completions only"
    url = f"http://{args.host}:{args.port}"
    print(f"serving {chat.name} ({mode}) on {url}: OpenAI API at {url}/v1, chat page at {url}/")
    print("Press Ctrl-C to stop", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _check_port(host: str, port: int) -> None:
    """A clear error before loading the model when the address is taken."""
    from smelt.errors import InputError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port"
            ) from None
