"""The chart files that follow from the declarations are committed as generated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.charts import HELM_DIR, LIBRARY, UMBRELLA, service_charts
from waybill_runtime.cli import main
from waybill_runtime.deploy.charts import MARKER, chart_files, stale_chart_files, write_chart_files
from waybill_runtime.local.registry import installed_services, load_services


def test_every_installed_service_has_its_own_chart() -> None:
    assert service_charts() == installed_services()


def test_committed_chart_files_equal_what_the_declarations_generate() -> None:
    stale = stale_chart_files(chart_files(load_services(), HELM_DIR), HELM_DIR)
    assert stale == [], (
        f"out of date with the declarations: {', '.join(map(str, stale))}; run "
        "`waybill helm values` and commit the result"
    )


def test_waybill_helm_values_check_passes_on_the_repository(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(HELM_DIR.parent)
    with pytest.raises(SystemExit) as exited:
        main(["helm", "values", "--check"])
    assert exited.value.code == 0, capsys.readouterr().out
    assert "match the declarations" in capsys.readouterr().out


def test_a_drifted_chart_is_named_and_rewritten_keeping_its_own_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    helm_dir = tmp_path / "helm"
    shutil.copytree(HELM_DIR, helm_dir, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    values = helm_dir / "auditor" / "values.yaml"
    own, generated = values.read_text().split(MARKER, 1)
    values.write_text(own + MARKER + generated.replace("port: 8080", "port: 9090"))
    (helm_dir / "orchestrator" / "values.schema.json").unlink()

    with pytest.raises(SystemExit) as exited:
        main(["helm", "values", "--check", "--helm-dir", str(helm_dir)])
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert f"out of date: {helm_dir / 'auditor' / 'values.yaml'}" in out
    assert f"out of date: {helm_dir / 'orchestrator' / 'values.schema.json'}" in out

    files = chart_files(load_services(), helm_dir)
    assert sorted(map(str, write_chart_files(files, helm_dir))) == [
        "auditor/values.yaml",
        "orchestrator/values.schema.json",
    ]
    assert stale_chart_files(files, helm_dir) == []
    # What the auditor's chart sets by hand (its StatefulSet) is kept.
    assert values.read_text().startswith(own)
    assert "workload: StatefulSet" in own


def test_waybill_helm_values_refuses_a_folder_without_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["helm", "values", "--helm-dir", str(tmp_path)])
    assert exited.value.code != 0
    assert f"has no {LIBRARY} chart" in capsys.readouterr().err


def test_the_umbrella_carries_each_service_s_own_values() -> None:
    umbrella = (HELM_DIR / UMBRELLA / "values.yaml").read_text()
    # The auditor's hand-written StatefulSet reaches components.auditor, indented.
    auditor = umbrella.split("\n  auditor:\n", 1)[1].split("\n  carrier-router:\n", 1)[0]
    assert "    workload: StatefulSet" in auditor
    assert "    enabled: true" in auditor
