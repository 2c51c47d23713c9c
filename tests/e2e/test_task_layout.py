"""The task page on a desktop and on phones, in real headless Chromium.

One stable layout per experiment kind at 1280, 390 and 320 px wide: nothing
scrolls sideways, every option lies inside the window, the maps are large on
a phone, no box moves from a task with a short class name to one with a long
one, focus is back on the options after each answer (so the number keys
answer task after task), and the per-experiment options: a minimum screen
width (a polite page) and a minimum viewing time (options locked, then free).
Screenshots go to ``$XAI_ARTIFACTS_DIR`` or ``bench-out/screenshots/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from apps.studies.models import Assignment, Response
from tests.studies.helpers import launched_study

CSS = Path(__file__).resolve().parents[2] / "frontend" / "static" / "rater" / "rater.css"

# Short and long class names alternate, so consecutive tasks differ in the length
# of the predicted class (the old page changed its layout with it).
CLASS_NAMES = [f"cat{i}" if i % 2 == 0 else f"Greater-Swiss-Mountain-Dog-{i}" for i in range(10)]
VIEWPORTS = [(1280, 800), (390, 844), (320, 640)]


def _shots_dir() -> Path:
    root = Path(os.environ.get("XAI_ARTIFACTS_DIR") or "bench-out")
    out = root / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _study(**kwargs):
    return launched_study(
        images_per_class=1,
        tasks_per_rater=5,
        family_kwargs={"class_names": CLASS_NAMES},
        **kwargs,
    )


def _wait_for_task(page, number: int, target: int) -> None:
    page.wait_for_function(
        "([t]) => document.getElementById('progress-text').textContent === t"
        " && !document.getElementById('stimuli').hidden"
        " && document.querySelectorAll('#options button:not([disabled])').length > 0",
        arg=[f"Task {number} of {target}"],
    )


LAYOUT_JS = """() => {
  const box = (el) => { const r = el.getBoundingClientRect();
    return [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)]; };
  const all = (sel) => Array.from(document.querySelectorAll(sel)).map(box);
  const active = document.activeElement;
  return {
    innerWidth: window.innerWidth, innerHeight: window.innerHeight,
    scrollWidth: document.documentElement.scrollWidth,
    images: all('#stimuli img'), figures: all('#stimuli figure'),
    options: all('#options .option'), question: all('.question'),
    predicted: (document.getElementById('predicted') || {}).textContent || '',
    focusedOption: !!(active && active.classList.contains('option')),
  };
}"""


def _check_fits(layout: dict) -> None:
    width = layout["innerWidth"]
    assert layout["scrollWidth"] <= width, "the page scrolls sideways"
    for left, _, w, _ in layout["options"] + layout["images"] + layout["figures"]:
        assert left >= 0 and left + w <= width, f"a box at x={left}..{left + w} leaves {width} px"


def _answer_tasks(page, *, count: int, target: int, key) -> list[dict]:
    """Answer ``count`` tasks with the keyboard; the layout of each before answering."""
    layouts = []
    for n in range(1, count + 1):
        _wait_for_task(page, n, target)
        page.wait_for_function("() => document.activeElement.classList.contains('option')")
        layouts.append(page.evaluate(LAYOUT_JS))
        page.keyboard.press(key(n))
    return layouts


@pytest.mark.parametrize("width,height", VIEWPORTS)
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_task_page_layout_is_stable_fits_the_screen_and_keeps_focus(
    live_server, page, width, height
):
    # given a study with short and long class names, seen in a window of this size
    study = _study()
    pairwise = study.experiments.get(slug="pw")
    forced = study.experiments.get(slug="fc")
    page.set_viewport_size({"width": width, "height": height})
    shots = _shots_dir()

    # when a rater answers every pairwise task with the number keys alone
    page.goto(f"{live_server.url}/r/{pairwise.code}/")
    page.check("#consent")
    page.click("#start")
    _wait_for_task(page, 1, 5)
    page.screenshot(path=str(shots / f"pairwise-{width}x{height}.png"), full_page=True)
    layouts = _answer_tasks(page, count=5, target=5, key=lambda n: str(1 + n % 5))
    page.wait_for_url(f"**/r/{pairwise.code}/done/")

    # then every option fits, focus was on an option for every task, and no box moved
    # between tasks whose class names differ in length
    assert len({len(layout["predicted"]) for layout in layouts}) > 1, "need short and long names"
    for layout in layouts:
        _check_fits(layout)
        assert layout["focusedOption"]
        assert len(layout["options"]) == 5
    first = layouts[0]
    for layout in layouts[1:]:
        for part in ("images", "figures", "options", "question"):
            assert layout[part] == first[part], f"{part} moved between tasks"
    assert Response.objects.filter(task__experiment=pairwise).count() == 5
    maps = [first["images"][0], first["images"][2]]  # Left, Right (the original is in between)
    if width < 700:
        # stacked: Left above Right, each a large share of the screen width
        assert maps[0][1] < maps[1][1] and maps[0][0] == maps[1][0]
        assert all(w >= 0.6 * width for _, _, w, _ in maps), maps
        # and the options are a vertical list of full-width buttons
        lefts = {left for left, *_ in first["options"]}
        assert len(lefts) == 1
    else:
        assert maps[0][1] == maps[1][1] and all(w >= 250 for _, _, w, _ in maps)
        tops = {top for _, top, *_ in first["options"]}
        assert len(tops) == 1  # one row

    # when the same browser answers forced-choice tasks with the keys (x = I don't know)
    page.goto(f"{live_server.url}/r/{forced.code}/")
    page.check("#consent")
    page.click("#start")
    _wait_for_task(page, 1, 5)
    page.screenshot(path=str(shots / f"forced-{width}x{height}.png"), full_page=True)
    layouts = _answer_tasks(page, count=5, target=5, key=lambda n: "x" if n % 2 else str(n))
    page.wait_for_url(f"**/r/{forced.code}/done/")

    # then all 11 options fit, "I don't know" is on the first screen, nothing moved
    for layout in layouts:
        _check_fits(layout)
        assert layout["focusedOption"] and len(layout["options"]) == 11
        assert layout["options"] == layouts[0]["options"]
        _, top, _, h = layout["options"][-1]
        assert top + h <= layout["innerHeight"], "I don't know is below the fold"
    map_width = layouts[0]["images"][0][2]
    assert map_width >= min(0.6 * width, 300)
    answers = list(
        Response.objects.filter(task__experiment=forced)
        .order_by("submitted_at")
        .values_list("answer", flat=True)
    )
    assert answers[0::2] == ["idk"] * 3 and len(answers) == 5


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_narrow_screen_gets_a_polite_page_and_asks_for_no_task(live_server, page):
    # given an experiment that needs a window at least 800 px wide, opened on a phone
    study = _study(min_screen_width=800)
    pairwise = study.experiments.get(slug="pw")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/r/{pairwise.code}/")
    page.check("#consent")
    page.click("#start")

    # then the page says so, shows no task, and the server handed none out
    message = page.locator("#too-small")
    message.wait_for(state="visible")
    assert "at least 800 px wide" in message.inner_text()
    assert page.locator("#task-area").is_hidden()
    page.screenshot(path=str(_shots_dir() / "too-small-390x844.png"))
    page.wait_for_timeout(300)
    assert not Assignment.objects.filter(participation__experiment=pairwise).exists()

    # when the window grows (a tablet turned, a larger screen), the task appears
    page.set_viewport_size({"width": 1024, "height": 768})
    _wait_for_task(page, 1, 5)
    assert message.is_hidden()
    assert Assignment.objects.filter(participation__experiment=pairwise).count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_minimum_viewing_time_keeps_the_options_locked_then_frees_them(live_server, page):
    # given a forced-choice experiment with a 1.5 s minimum viewing time
    study = _study(min_viewing_ms=1500)
    forced = study.experiments.get(slug="fc")
    page.goto(f"{live_server.url}/r/{forced.code}/")
    page.check("#consent")
    page.click("#start")

    # when the first map appears, every option is disabled and a key does nothing
    page.wait_for_function(
        "() => !document.getElementById('stimuli').hidden"
        " && document.querySelectorAll('#options .option').length === 11"
    )
    assert page.locator("#options .option:not([disabled])").count() == 0
    assert "unlock" in page.locator("#viewing-hint").inner_text()
    page.keyboard.press("x")
    page.wait_for_timeout(200)
    assert not Response.objects.exists()

    # then after the minimum they are enabled, focused, and an answer stores its time
    _wait_for_task(page, 1, 5)
    page.wait_for_function("() => document.activeElement.classList.contains('option')")
    page.keyboard.press("x")
    _wait_for_task(page, 2, 5)
    assert page.locator("#options .option:not([disabled])").count() == 11  # locked again, freed
    response = Response.objects.get()
    assert response.answer == "idk" and response.response_ms >= 1500


# ---- colours: WCAG AA from the values the stylesheet defines ----------------


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _css_colours() -> dict[str, str]:
    root = re.search(r":root\s*\{([^}]*)\}", CSS.read_text()).group(1)
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", root))


TEXT_PAIRS = [  # (text, background): >= 4.5:1
    ("fg", "bg"), ("fg", "option-bg"), ("fg", "chosen-bg"), ("fg", "hover-bg"),
    ("muted", "bg"), ("muted", "card"), ("muted", "option-bg"), ("muted", "chosen-bg"),
    ("accent", "card"), ("error-fg", "error-bg"),
]  # fmt: skip
BORDER_PAIRS = [  # (border or focus ring, what it sits on): >= 3:1
    ("border", "option-bg"), ("border", "bg"), ("accent", "bg"), ("accent", "hover-bg"),
    ("accent", "chosen-bg"), ("accent", "option-bg"),
]  # fmt: skip


def test_rater_page_colours_meet_wcag_aa_for_text_and_button_borders():
    colours = _css_colours()
    for fg, bg in TEXT_PAIRS:
        ratio = _contrast(colours[fg], colours[bg])
        assert ratio >= 4.5, f"text --{fg} on --{bg} is {ratio:.2f}:1, under 4.5:1"
    for edge, bg in BORDER_PAIRS:
        ratio = _contrast(colours[edge], colours[bg])
        assert ratio >= 3, f"--{edge} on --{bg} is {ratio:.2f}:1, under 3:1"
    assert _contrast("#ffffff", colours["accent"]) >= 4.5  # the primary button's text
