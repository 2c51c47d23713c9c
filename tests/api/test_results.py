"""The analysis files: 404 until an analysis has finished, then listed and downloadable."""

from __future__ import annotations

from tests.studies.helpers import answer_one, join


def _answer(study) -> None:
    for slug in ("pw", "fc"):
        rater = join(study.experiments.get(slug=slug))
        for _ in range(3):
            answer_one(rater, choice=0)


def _analyse(study) -> None:
    """What the results page and the worker do: request a run, then run it (in-process)."""
    from apps.analysis.services import analysis_run_execute, study_results_request

    state = study_results_request(study=study)
    run = analysis_run_execute(study_id=study.pk, run_id=state.run.pk)
    assert run.status == "done", run.error


def test_results_are_404_before_any_answer(api, study):
    listed = api.get(f"/api/v1/studies/{study.slug}/results/")
    assert listed.status_code == 404
    assert listed.json()["code"] == "no_results"
    assert "not been computed" in listed.json()["message"]
    assert api.get(f"/api/v1/studies/{study.slug}/results/responses.csv").status_code == 404


def test_results_are_404_until_the_analysis_ran(api, study):
    _answer(study)
    assert api.get(f"/api/v1/studies/{study.slug}/results/").status_code == 404


def test_results_list_and_download(api, study):
    # given answers in both experiments, analysed
    _answer(study)
    _analyse(study)
    # when the researcher lists the results
    response = api.get(f"/api/v1/studies/{study.slug}/results/")
    # then the analysis' files are listed with their download links
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["study"] == "mine" and body["n_answers"] == 6
    files = {f["name"]: f for f in body["files"]}
    assert "responses.csv" in files and "DONE" not in files
    assert all(f["size"] >= 0 for f in files.values())
    # and each downloads as the file the analysis wrote
    download = api.get(files["responses.csv"]["url"])
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    content = b"".join(download.streaming_content).decode()
    assert content.splitlines()[0].startswith("study,experiment,")
    assert api.get(f"/api/v1/studies/{study.slug}/results/../../settings.py").status_code == 404
    named = api.get(f"/api/v1/studies/{study.slug}/results/nothing.png")
    assert named.status_code == 404
    assert named.json()["message"] == (
        "The results of study 'mine' have no file named 'nothing.png'."
    )
