"""smelt.chat: conversations, their ChatML rendering, and what chatting needs besides a model.

Plain Python over a `tokenizers.Tokenizer`; no model, no Prefect. SFT renders its training data
with the same `ChatTemplate` that `smelt chat` and `smelt serve` render prompts with:

    from smelt.chat import ChatTemplate, to_messages
    template = ChatTemplate(tokenizer)               # the tokenizer's ChatML template
    encoded = template.encode_conversation(to_messages(record))
    encoded.ids, encoded.assistant_mask              # loss on the assistant's tokens only
    prompt = template.encode_prompt(messages)        # ids asking for the next assistant turn
"""

from smelt.chat.detokenize import TextStream
from smelt.chat.history import fit_to_context
from smelt.chat.messages import FORMS, ROLES, Message, as_messages, detect_form, to_messages
from smelt.chat.template import (
    CHAT_TEMPLATE,
    END_OF_TURN,
    TEMPLATE_FILE,
    ChatTemplate,
    EncodedConversation,
    load_template,
    render,
    require_chatml,
    save_template,
)

__all__ = [
    "CHAT_TEMPLATE",
    "END_OF_TURN",
    "FORMS",
    "ROLES",
    "TEMPLATE_FILE",
    "ChatTemplate",
    "EncodedConversation",
    "Message",
    "TextStream",
    "as_messages",
    "detect_form",
    "fit_to_context",
    "load_template",
    "render",
    "require_chatml",
    "save_template",
    "to_messages",
]
