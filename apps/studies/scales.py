"""Answer options as raters see them, and their encoding.

Pairwise options are displayed left to right, from "left clearly more
reasonable" to "right clearly more reasonable". Option ``i`` of a k-point
scale means ``v = k_half - i`` from the *left* map's point of view; the stored
answer is taken from condition A's (the lower CPR's) point of view, so it is
``v`` when A was shown on the left and ``-v`` otherwise (PROTOCOL §5).
"""

from __future__ import annotations

PAIRWISE_SCALES: dict[int, tuple[str, ...]] = {
    3: (
        "Left more reasonable",
        "Equally reasonable",
        "Right more reasonable",
    ),
    5: (
        "Left clearly more reasonable",
        "Left slightly more reasonable",
        "Equally reasonable",
        "Right slightly more reasonable",
        "Right clearly more reasonable",
    ),
    7: (
        "Left clearly more reasonable",
        "Left moderately more reasonable",
        "Left slightly more reasonable",
        "Equally reasonable",
        "Right slightly more reasonable",
        "Right moderately more reasonable",
        "Right clearly more reasonable",
    ),
}

IDK_LABEL = "I don't know / None of the above"
IDK_ANSWER = "idk"


def pairwise_labels(scale_points: int) -> tuple[str, ...]:
    try:
        return PAIRWISE_SCALES[scale_points]
    except KeyError:
        raise ValueError(f"scale_points must be 3, 5 or 7, not {scale_points}") from None


def pairwise_encode(*, scale_points: int, choice: int, left_is_a: bool) -> int:
    """Encoded answer in -k..+k from condition A's point of view."""
    labels = pairwise_labels(scale_points)
    if not 0 <= choice < len(labels):
        raise ValueError(f"choice {choice} is outside 0..{len(labels) - 1}")
    left_view = (scale_points - 1) // 2 - choice
    return left_view if left_is_a else -left_view


def forced_choice_labels(class_names: list[str]) -> tuple[str, ...]:
    return (*class_names, IDK_LABEL)


def forced_choice_answer(*, class_names: list[str], choice: int) -> str:
    if not 0 <= choice <= len(class_names):
        raise ValueError(f"choice {choice} is outside 0..{len(class_names)}")
    return IDK_ANSWER if choice == len(class_names) else class_names[choice]


def attention_question(*, pairwise: bool, label: str) -> str:
    """An attention check's question: it names the option to choose (instructed response)."""
    what = "pair" if pairwise else "photo"
    return f"For this {what}, please choose \u201c{label}\u201d."
