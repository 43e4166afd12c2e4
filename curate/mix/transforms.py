"""Quality transforms applied to one response, and the conversational `messages` a row becomes.

Each function is pure and works on one string, so a transform of one row never depends on another.
- strip_thinking: the study's NoCoT condition. Everything up to the last `</think>` goes (as the
  paper's scorer does); the summary and the answer stay. A trace whose `<think>` never closes has no
  summary to keep, so it returns None and the row is not eligible.
- truncate: keep the first `keep` share of the response, cut at a word boundary, no closing tag or
  answer: what a length-capped generation looks like.
- reference_solution: the problem's reference short solution (metadata.solution or NuminaMath-style
  `{"solution": ...}`); boxed_answer: a bare gold answer as a one-line `\\boxed{answer}` response, which
  a recipe uses only when it asks for it (quality.reference_fallback: boxed_answer).
"""
from __future__ import annotations

from typing import Any, Optional

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# The phrase of the study's template; a prompt that already carries it is used as is.
TEMPLATE_MARKER = "put your final answer within \\boxed{}"


def strip_thinking(text: str) -> Optional[str]:
    """The response after the last `</think>`; unchanged when there is no think block; None if unclosed."""
    cut = text.rfind(THINK_CLOSE)
    if cut >= 0:
        rest = text[cut + len(THINK_CLOSE):].strip()
        return rest or None
    if THINK_OPEN in text:
        return None
    return text


def truncate(text: str, keep: float) -> str:
    """The first `keep` share of `text`, cut back to the last whitespace so no word is split."""
    n = max(1, int(len(text) * keep))
    cut = text.rfind(" ", 0, n + 1)
    if cut <= 0:
        cut = n
    return text[:cut].rstrip()


def reference_solution(reference: Any, solution: Optional[str] = None) -> Optional[str]:
    """The reference short solution as a response; None when the problem has none.

    `solution` (from the problem's metadata, where importers and task sources keep it) wins; then a
    `{"solution": ...}` reference.
    """
    if isinstance(solution, str) and solution.strip():
        return solution.strip()
    if isinstance(reference, dict):
        sol = reference.get("solution")
        if isinstance(sol, str) and sol.strip():
            return sol.strip()
    return None


def boxed_answer(reference: Any) -> Optional[str]:
    """The bare gold answer as a one-line `\\boxed{answer}` response (a recipe's explicit fallback), or None."""
    ref = reference.get("answer") if isinstance(reference, dict) else reference
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        ref = str(ref)
    if isinstance(ref, str) and ref.strip():
        ans = ref.strip()
        return ans if "\\boxed{" in ans else f"The final answer is $\\boxed{{{ans}}}$."
    return None


def reference_response(reference: Any, solution: Optional[str] = None) -> Optional[str]:
    """The reference solution, else the boxed gold answer."""
    return reference_solution(reference, solution) or boxed_answer(reference)


def user_turn(prompt: str, template: str) -> str:
    """The study's user turn: the question plus the boxed-answer instruction, unless already there."""
    if TEMPLATE_MARKER in prompt:
        return prompt
    return template.replace("{question}", prompt)


def messages(prompt: str, response: str, template: str, system_prompt: Optional[str]) -> list[dict]:
    out = [{"role": "system", "content": system_prompt}] if system_prompt else []
    out.append({"role": "user", "content": user_turn(prompt, template)})
    out.append({"role": "assistant", "content": response})
    return out
