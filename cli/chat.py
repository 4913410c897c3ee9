"""`smelt chat`: a streaming chat REPL on a checkpoint, or one reply with --message.

The REPL's commands follow Skylar's: /system /temp /topk /topp /rep /max /clear /config /help
/quit. Ctrl-C stops a reply (what was said so far stays in the history); Ctrl-D or /quit leaves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

HELP = [
    ("/system TEXT", "set the system prompt (alone: remove it); keeps the history"),
    ("/temp T", "temperature (0 = greedy)"),
    ("/topk K", "sample from the K most likely tokens (0 = off)"),
    ("/topp P", "nucleus sampling mass (1 = off)"),
    ("/rep R", "repetition penalty (1 = off)"),
    ("/max N", "most new tokens per reply"),
    ("/clear", "forget the conversation"),
    ("/config", "show the model and the settings"),
    ("/help", "this list"),
    ("/quit", "leave (also /exit, Ctrl-D)"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    chat = subparsers.add_parser("chat", help="chat with a checkpoint (REPL, or one --message)")
    chat.add_argument(
        "--checkpoint",
        required=True,
        metavar="URI",
        help="a run's output URI (newest complete checkpoint) or a step directory",
    )
    chat.add_argument("--message", metavar="TEXT", help="print the reply to TEXT and exit")
    chat.add_argument("--system", metavar="TEXT", help="system prompt (default: none)")
    chat.add_argument("--temperature", type=float, default=0.7, help="0 is greedy")
    chat.add_argument("--top-k", type=int, default=0, help="0 is off")
    chat.add_argument("--top-p", type=float, default=0.9, help="1 is off")
    chat.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="1 is off; above 1 discourages repeats",
    )
    chat.add_argument("--max-new-tokens", type=int, default=256, help="most tokens in one reply")
    chat.add_argument(
        "--seed", type=int, default=None, help="sampling seed (default: a fresh one each run)"
    )
    chat.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda")
    chat.set_defaults(handler=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    from smelt.serving import ChatSession, Settings, load_chat_model

    settings = Settings(
        temperature=args.temperature,
        top_k=args.top_k or None,
        top_p=args.top_p if args.top_p < 1.0 else None,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    chat = load_chat_model(args.checkpoint, args.device)
    session = ChatSession(chat, settings, system=args.system)
    if args.message is None:
        return Repl(session).run()
    if not chat.is_chat:
        print(f"{chat.name} is a base model: plain continuation mode", file=sys.stderr)
    for piece in session.send(args.message):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _top_p(value: str) -> float | None:
    """1 turns nucleus sampling off; above 1 is no probability mass."""
    mass = float(value)
    if mass > 1.0:
        raise ValueError(f"must be in (0, 1], got {mass}")
    return mass if mass < 1.0 else None


class Repl:
    """The interactive loop: read a line, run a command or stream a reply."""

    def __init__(self, session) -> None:  # noqa: ANN001 - smelt.serving.ChatSession
        from rich.console import Console

        self.session = session
        self.console = Console(highlight=False)
        self.commands: dict[str, Callable[[str], bool | None]] = {
            "/system": self.set_system,
            "/temp": self.setting("temperature", float),
            "/topk": self.setting("top_k", lambda v: int(v) or None),
            "/topp": self.setting("top_p", _top_p),
            "/rep": self.setting("repetition_penalty", float),
            "/max": self.setting("max_new_tokens", int),
            "/clear": self.clear,
            "/config": self.show_config,
            "/help": self.show_help,
            "/quit": self.quit,
            "/exit": self.quit,
        }

    def run(self) -> int:
        self.banner()
        while True:
            try:
                line = self.console.input("[bold cyan]you>[/] ")
            except EOFError:
                self.console.print()
                return 0
            except KeyboardInterrupt:
                self.console.print("\n[dim](/quit to leave)[/]")
                continue
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                name, _, rest = line.partition(" ")
                command = self.commands.get(name.lower())
                if command is None:
                    self.console.print(f"[red]unknown command {name}[/]; /help lists them")
                elif command(rest.strip()) is False:
                    return 0
                continue
            self.answer(line)

    def banner(self) -> None:
        chat = self.session.chat
        self.console.print(
            f"[bold]smelt chat[/] · {chat.name} · step {chat.opened.step:,} · "
            f"context {chat.context} tokens"
        )
        if chat.is_chat:
            self.console.print("[dim]chat model (ChatML) · /help for commands · Ctrl-D to quit[/]")
        else:
            self.console.print(
                "[yellow]base model: plain continuation mode[/] (its run has no chat template): "
                "each message is continued as text, without history or system prompt"
            )

    def answer(self, line: str) -> None:
        from smelt.errors import SmeltError

        try:
            reply = self.session.send(line)
        except SmeltError as exc:
            self.console.print(f"[red]{exc}[/]")
            return
        if reply.dropped:
            self.console.print(
                f"[dim](dropped the {reply.dropped} oldest messages to fit the "
                f"{self.session.chat.context}-token context)[/]"
            )
        self.console.print("[bold green]assistant>[/] ", end="")
        try:
            for piece in reply:
                self.console.out(piece, end="")
        except KeyboardInterrupt:
            self.console.print(" [dim](stopped)[/]", end="")
        self.console.print()

    # ---- commands ----------------------------------------------------------------------------

    def setting(self, field: str, parse: Callable[[str], object]) -> Callable[[str], None]:
        def change(value: str) -> None:
            from smelt.errors import SmeltError

            try:
                self.session.settings = self.session.settings.with_(**{field: parse(value)})
            except (ValueError, SmeltError) as exc:
                self.console.print(f"[red]{field}: {exc}[/]")
                return
            shown = getattr(self.session.settings, field)
            self.console.print(f"[dim]{field} = {'off' if shown is None else shown}[/]")

        return change

    def set_system(self, text: str) -> None:
        if not self.session.chat.is_chat:
            self.console.print("[yellow]a base model has no system prompt[/]")
            return
        self.session.system = text or None
        self.console.print(f"[dim]system prompt {'set' if text else 'removed'}[/]")

    def clear(self, _: str) -> None:
        self.session.clear()
        self.console.print("[dim]conversation cleared[/]")

    def show_config(self, _: str) -> None:
        from rich.table import Table

        session, chat = self.session, self.session.chat
        settings = session.settings
        table = Table(show_header=False, box=None)
        rows = [
            ("model", f"{chat.name} (step {chat.opened.step:,})"),
            ("checkpoint", chat.opened.step_dir),
            ("mode", "chat (ChatML)" if chat.is_chat else "base: plain continuation"),
            ("context", f"{chat.context} tokens"),
            ("system", session.system or "(none)"),
            ("temperature", str(settings.temperature)),
            ("top_k", str(settings.top_k or "off")),
            ("top_p", str(settings.top_p or "off")),
            ("repetition_penalty", str(settings.repetition_penalty)),
            ("max_new_tokens", str(settings.max_new_tokens)),
            ("history", f"{len(session.history)} messages"),
        ]
        for name, value in rows:
            table.add_row(f"[bold]{name}[/]", value)
        self.console.print(table)

    def show_help(self, _: str) -> None:
        for usage, text in HELP:
            self.console.print(f"  [bold]{usage:<14}[/] {text}")

    def quit(self, _: str) -> bool:
        return False
