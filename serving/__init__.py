"""smelt.serving: talking to a trained model, one conversation at a time or many at once.

    chat = load_chat_model("s3://bucket/runs/sft")         # model, tokenizer, chat template
    session = ChatSession(chat)                             # `smelt chat`: history, settings
    for piece in session.send("Hello"): print(piece, end="")
    app = api.create_app(chat, Engine(chat.model))         # `smelt serve` (smelt.serving.api)

No Prefect here; FastAPI/uvicorn for HTTP, rich stays in the command line.
"""

from smelt.serving.chat_model import ChatModel, load_chat_model, run_chat_template
from smelt.serving.engine import Engine, EngineStats, Event, Sampling
from smelt.serving.session import ChatSession, Reply, Settings

__all__ = [
    "ChatModel",
    "ChatSession",
    "Engine",
    "EngineStats",
    "Event",
    "Reply",
    "Sampling",
    "Settings",
    "load_chat_model",
    "run_chat_template",
]
