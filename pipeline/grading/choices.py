"""Multiple choice: rendering options, finding the options a question lists itself, and reading one option letter.

Two readers of a letter, one rule: `parse_choice` reads a model's answer strictly (a bare lower-case "a" is an
article, not a letter); `gold_letter` reads a data set's gold answer, where a bare "b" does mean option B.
"""

from __future__ import annotations

import re

from pipeline.grading.normalize import clean_answer, normalize_text

_OPTION_LINE = re.compile(r"^\s*\(?([A-H])[\.\):]\s+(.+?)\s*$", re.M)
_LETTER = re.compile(r"^(?:option\s+|choice\s+)?\(?([A-Z])\)?\s*[.:)]?$", re.I)
_LETTER_WITH_TEXT = re.compile(r"^(?:option\s+)?\(?([A-Z])\)?\s*[.:)]\s*(.+)$", re.S)
GOLD_LETTERS = 8  # data sets list at most A-H; a gold "K" is a typo, not an option


def choice_letter(index: int) -> str:
    return chr(ord("A") + index)


def format_choices(choices: list[str]) -> str:
    """Options rendered the way most multimodal math benchmarks show them: `A. text` per line."""
    return "\n".join(f"{choice_letter(i)}. {c}" for i, c in enumerate(choices))


def extract_choices(question: str) -> list[str] | None:
    """Option lines like `A. 3`, `(B) 4`, `C: 5` in order A, B, C…; None when the question has no such list."""
    found = _OPTION_LINE.findall(question)
    letters = [letter for letter, _ in found]
    if len(found) >= 2 and letters == [choice_letter(i) for i in range(len(found))]:
        return [text for _, text in found]
    return None


def lists_choices(question: str) -> bool:
    """Whether the question already shows its options (most sources embed them), so a prompt must not add them
    a second time."""
    return extract_choices(question) is not None


def with_choices(question: str, choices: list[str] | None) -> str:
    """The question as a model sees it: its options appended on their own lines unless it lists them itself."""
    if choices and not lists_choices(question):
        return f"{question}\n{format_choices(choices)}"
    return question


def parse_choice(text: str, choices: list[str] | None = None, bare_lowercase: bool = False) -> str | None:
    """One option letter from "C", "(C)", "C.", "option C", "Final Answer: C", "\\boxed{C}", "The answer is C",
    or "C. <that option's exact text>". Anything with two letters or extra words is None.
    Lower-case letters count only in the bracketed/dotted forms ("(c)", "c."), never a bare "a" (an article),
    unless `bare_lowercase`."""
    t = clean_answer(text)
    if t is None:
        return None
    n = len(choices) if choices else 26
    m = _LETTER.match(t)
    if m:
        letter = m.group(1)
        if letter.islower() and t == letter and not bare_lowercase:
            return None
        letter = letter.upper()
    else:
        m = _LETTER_WITH_TEXT.match(t)
        if not m or not choices:
            return None
        letter = m.group(1).upper()
        idx = ord(letter) - ord("A")
        if idx >= n or normalize_text(m.group(2)) != normalize_text(choices[idx]):
            return None
    return letter if ord(letter) - ord("A") < n else None


def gold_letter(answer: str) -> str | None:
    """The option letter a data set's gold answer names ("B", "(b)", "The answer is B", "option B"), A-H only."""
    letter = parse_choice(answer, bare_lowercase=True)
    return letter if letter is not None and ord(letter) - ord("A") < GOLD_LETTERS else None
