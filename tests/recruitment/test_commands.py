"""publish / sync_provider / pay / unpublish from the command line, and the same in the admin."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from apps.recruitment.models import ExternalCall, Publication
from apps.studies.models import Study
from tests.studies.helpers import launched_study

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args, stdin: str | None = None, monkeypatch=None) -> str:
    out = io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("builtins.input", lambda prompt: stdin)
    call_command(*args, stdout=out)
    return out.getvalue()


def test_publish_dry_run_prints_plan_and_cost_and_keeps_nothing():
    launched_study(slug="cmd")

    out = _run("publish", "cmd", "--provider", "link", "--reward", "2.00", "--dry-run")

    assert "pw: " in out and "fc: " in out
    assert "https://study.example.org/r/" in out
    assert "cost estimate: " in out and "x 2.00" in out
    assert "Dry run: nothing was created." in out
    assert Publication.objects.count() == 0


def test_publish_asks_and_a_no_sends_nothing(monkeypatch):
    launched_study(slug="cmd")

    out = _run("publish", "cmd", "--provider", "link", stdin="n", monkeypatch=monkeypatch)

    assert "Not published" in out
    assert set(Publication.objects.values_list("status", flat=True)) == {"draft"}


def test_publish_without_a_terminal_needs_yes(monkeypatch):
    launched_study(slug="cmd")

    def no_terminal(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)
    with pytest.raises(CommandError, match="--yes"):
        call_command("publish", "cmd", "--provider", "link", stdout=io.StringIO())


def test_publish_twice_creates_nothing_new():
    launched_study(slug="cmd")

    first = _run("publish", "cmd", "--provider", "link", "--yes")
    second = _run("publish", "cmd", "--provider", "link", "--yes")

    assert first.count("published ") == 2
    assert "already published" in second and "Nothing new to publish." in second
    assert Publication.objects.filter(status="published").count() == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nope", "--provider", "link"], "No study 'nope' (known: cmd)"),
        (["cmd", "--provider", "prolific"], "A reward is required to publish on Prolific"),
        (["cmd", "--provider", "link", "--sandbox"], "--sandbox exists for MTurk only"),
        (["cmd", "--provider", "link", "--reward", "1.005"], "more than two decimals"),
        (["cmd", "--provider", "link", "--places", "0"], "--places must be at least 1"),
        (["cmd", "--provider", "link", "--option", "novalue"], "key=value"),
    ],
)
def test_publish_names_what_is_wrong(args, needle):
    launched_study(slug="cmd")
    with pytest.raises(CommandError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        call_command("publish", *args, "--yes", stdout=io.StringIO())
    assert Publication.objects.count() == 0


def test_a_study_not_launched_is_not_published():
    study = launched_study(slug="cmd")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    with pytest.raises(CommandError, match="launch it before publishing"):
        call_command("publish", "cmd", "--provider", "link", "--yes", stdout=io.StringIO())


def test_places_default_to_filling_every_slot():
    launched_study(slug="cmd", answers_per_task=3, tasks_per_rater=5)
    _run("publish", "cmd", "--provider", "link", "--yes")
    for publication in Publication.objects.select_related("experiment"):
        slots = publication.experiment.tasks.count() * 3
        assert publication.places == -(-slots // 5)


def test_sync_and_pay_on_a_plain_link_say_there_is_nothing_to_do():
    launched_study(slug="cmd")
    _run("publish", "cmd", "--provider", "link", "--yes")

    assert "published on no crowd provider" in _run("sync_provider", "cmd")
    out = _run("pay", "cmd", "--dry-run")
    assert "0 to approve, 0 to reject, 0 bonuses for approved ones, 0 held" in out
    assert ExternalCall.objects.count() == 0


def test_the_admin_publishes_after_showing_the_plan(admin_client_):
    study = launched_study(slug="adm")
    url = f"/admin/recruitment/publication/publish/{study.pk}/"
    form = {"provider": "link", "reward": "1.25", "places": "4", "redirect_url": ""}

    page = admin_client_.get(url)
    plan = admin_client_.post(url, {**form, "plan": "1"})
    assert page.status_code == plan.status_code == 200
    assert "cost estimate: 4 places x 1.25" in plan.content.decode()
    assert Publication.objects.count() == 0  # showing the plan keeps nothing

    done = admin_client_.post(url, {**form, "confirm": "1"})
    assert done.status_code == 302
    assert set(Publication.objects.values_list("status", "reward", "places")) == {
        ("published", Decimal("1.25"), 4)
    }


def test_the_admin_refuses_a_paid_provider_without_a_reward(admin_client_):
    study = launched_study(slug="adm")
    page = admin_client_.post(
        f"/admin/recruitment/publication/publish/{study.pk}/",
        {"provider": "prolific", "confirm": "1"},
        follow=True,
    )
    assert "A reward is required" in page.content.decode()
    assert Publication.objects.count() == 0


def test_the_study_action_leads_to_the_publish_page(admin_client_):
    study = launched_study(slug="adm")
    response = admin_client_.post(
        "/admin/studies/study/", {"action": "publish", "_selected_action": [study.pk]}
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"/admin/recruitment/publication/publish/{study.pk}/")


def test_publish_on_the_mturk_sandbox_end_to_end_through_a_fake(settings):
    """The command as a researcher runs it, against a loopback MTurk: plan, balance, HITs."""
    from tests.recruitment.fake_mturk import FakeMTurk

    server = FakeMTurk()
    settings.MTURK_ENDPOINT_URL = server.start()
    settings.PROVIDER_TIMEOUT_SECONDS = 2
    try:
        launched_study(slug="mt", answers_per_task=3, tasks_per_rater=5)
        out = _run("publish", "mt", "--provider", "mturk", "--sandbox", "--reward", "0.80", "--yes")
        again = _run("publish", "mt", "--provider", "mturk", "--sandbox", "--yes")
    finally:
        server.stop()

    assert "MTurk sandbox account balance: 10000.00 USD" in out
    assert "cost estimate: " in out and "MTurk stopped taking new customers" in out
    assert out.count("published ") == 2 and "Nothing new to publish." in again
    assert out.count("https://workersandbox.mturk.com/projects/") == 2
    publications = list(Publication.objects.all())
    hits = ExternalCall.objects.filter(kind="create_hit", state="done").count()
    assert hits == sum(-(-p.places // 9) for p in publications)
    assert server.count("CreateHITWithHITType") == hits
