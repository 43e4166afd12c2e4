"""The study's prompt template and chat formatting.

User turn: `{question}\\nPlease reason step by step, and put your final answer within \\boxed{}.`
(docs/paper.md), no system prompt unless one is asked for. Chat formatting goes through the model
tokenizer's `apply_chat_template`; some templates (the public Qwen2.5 one, for example) inject a default
system prompt when none is given, which `detect_injected_system` finds by rendering a probe conversation.
"""
from __future__ import annotations

import logging
import warnings

from curate.errors import InputError
from curate.records import Problem

log = logging.getLogger(__name__)

SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_TEMPLATE = "{question}\n" + SUFFIX
_PROBE = "curate-probe-7f3a"  # a string no template contains, to find where the user turn lands


def user_text(question: str, template: str = DEFAULT_TEMPLATE) -> str:
    """Fill the template; a question that already ends with the study's suffix is not suffixed twice."""
    if "{question}" not in template:
        raise InputError("prompt template must contain {question}")
    if template == DEFAULT_TEMPLATE and question.rstrip().endswith(SUFFIX):
        return question.rstrip()
    return template.replace("{question}", question)


def build_messages(problem: Problem, template: str = DEFAULT_TEMPLATE, system: str | None = None) -> tuple[dict, ...]:
    if not problem.prompt or not problem.prompt.strip():
        raise InputError(f"problem {problem.id} ({problem.source}) has an empty prompt")
    msgs = [{"role": "user", "content": user_text(problem.prompt, template)}]
    if system:
        msgs.insert(0, {"role": "system", "content": system})
    return tuple(msgs)


def detect_injected_system(tokenizer) -> str | None:
    """Return the text a chat template puts before the user turn when no system prompt is given.

    None when the template adds nothing but role markers. We compare the prefix before the probe user
    message against the same render with an explicit empty system message removed; any prose in the
    prefix (more than role/special tokens) means the template injected a system prompt.
    """
    try:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": _PROBE}], tokenize=False,
                                                 add_generation_prompt=True)
    except Exception:  # a tokenizer without a chat template: nothing to inject
        return None
    prefix = rendered.split(_PROBE)[0]
    for tok in getattr(tokenizer, "all_special_tokens", []) or []:
        prefix = prefix.replace(tok, " ")
    words = [w for w in prefix.replace("\n", " ").split() if w.lower() not in ("user", "system", "<|im_start|>", "<|im_end|>")]
    # Role markers like "<|start_header_id|>user" collapse to a couple of words; a sentence is longer.
    return prefix.strip() if len(words) >= 3 else None


def warn_if_injected(tokenizer, system: bool = False) -> str | None:
    """Warn (once per call site) when the template adds a system prompt nobody asked for; return it."""
    if system:
        return None
    injected = detect_injected_system(tokenizer)
    if injected:
        warnings.warn(
            f"the chat template injects a system prompt when none is given ({injected[:80]!r}); "
            "the study uses none: use a template without one, or pass --system to choose it explicitly",
            stacklevel=2,
        )
    return injected


def render(tokenizer, messages) -> str:
    """Apply the tokenizer's chat template with a generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("the tokenizer has no chat template",
                         hint="set --option raw=true to send the plain user text, or use a chat model's tokenizer")
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
