"""`waybill new service NAME`: one-line refusals; a scaffold that passes lint, tests, and runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from waybill_runtime.scaffold import register_in_pyproject

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _waybill(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waybill_runtime", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _small_repository(root: Path) -> Path:
    """A folder with the repository's pyproject.toml and services/ (enough for refusals)."""
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "services" / "notifier").mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    "name", ["Parcel", "parcel_desk", "9parcels", "parcel--desk", "parcel-", "a" * 31]
)
def test_a_bad_name_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    result = _waybill("new", "service", name, "--root", str(_small_repository(tmp_path)))
    assert result.returncode == 2
    assert result.stderr.startswith(f"waybill: error: {name!r} is not a valid service name")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "services" / name).exists()


def test_an_existing_service_is_refused_in_one_line(tmp_path: Path) -> None:
    root = _small_repository(tmp_path)
    before = (root / "pyproject.toml").read_text()
    result = _waybill("new", "service", "notifier", "--root", str(root))
    assert result.returncode == 2
    assert result.stderr == "waybill: error: services/notifier already exists: pick another name\n"
    assert (root / "pyproject.toml").read_text() == before


def test_a_folder_that_is_not_the_repository_is_refused_in_one_line(tmp_path: Path) -> None:
    result = _waybill("new", "service", "parcel-desk", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a Waybill repository" in result.stderr and "--root" in result.stderr
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_pyproject_edit_adds_one_line_to_each_list_and_nothing_else() -> None:
    before = (REPO / "pyproject.toml").read_text()
    after = register_in_pyproject(before, "parcel-desk", "waybill_parcel_desk")
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ['    "services/parcel-desk/src",', '    "waybill_parcel_desk.*",']
    assert after.replace(added[0] + "\n", "").replace(added[1] + "\n", "") == before
    assert register_in_pyproject(after, "parcel-desk", "waybill_parcel_desk") == after


def _copy_repository(target: Path) -> Path:
    """The repository's tracked files (no .venv, no caches), as `git ls-files` lists them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = REPO / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=env or dict(os.environ)
    )
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the service stopped: {proc.communicate()[0]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {timeout_s} s")


@pytest.mark.long  # lint, tests and a stack in a scaffolded copy: make long
@pytest.mark.timeout(900)
def test_a_scaffolded_service_passes_lint_and_its_tests_and_starts_as_waybill_up_starts_it(
    tmp_path: Path, nats_url: str
) -> None:
    """The acceptance: what `make lint test` and `waybill up` would do, minus installing.

    The repository's tracked files are copied (no .venv), `waybill new service
    parcel-desk` runs there, and then, with cwd = the copy so its pyproject
    (with the edited mypy_path and strict list) is the configuration:
    ruff check and ruff format --check over the whole copy, mypy on the new
    package and its tests, and pytest on the new tests against a real
    nats-server, with PYTHONPATH naming the copy's new sources. The shared
    .venv is never touched: installing there would put a phantom service into
    everyone's `waybill up`. What installing adds is the entry point, so the
    service object it would point at is checked here, put into the local plan
    beside the installed services and sandboxes exactly as `waybill up` does,
    and started as its own process with the plan's environment (as the stack
    starts services), until /readyz answers 200 and SIGTERM ends it with 0.
    """
    copy = _copy_repository(tmp_path / "repo")
    created = _run([sys.executable, "-m", "waybill_runtime", "new", "service", "parcel-desk",
                    "--root", str(copy)], cwd=copy)  # fmt: skip
    assert "services/parcel-desk/src/waybill_parcel_desk/handlers.py" in created
    assert "make install" in created and "waybill up" in created
    src = copy / "services" / "parcel-desk" / "src"
    for name in ("__init__.py", "app.py", "config.py", "handlers.py", "py.typed"):
        assert (src / "waybill_parcel_desk" / name).is_file(), name
    readme = (copy / "services" / "parcel-desk" / "README.md").read_text()
    assert "`waybill.evt.order.released.v1` | `OrderReleased`" in readme
    assert "| `WAYBILL_LOG_EACH_ORDER` |" in readme
    pyproject = (copy / "pyproject.toml").read_text()
    assert '"services/parcel-desk/src",' in pyproject and '"waybill_parcel_desk.*",' in pyproject
    entry = (copy / "services" / "parcel-desk" / "pyproject.toml").read_text()
    assert 'parcel-desk = "waybill_parcel_desk.app:service"' in entry
    # Its Helm chart, and its entry in the umbrella's, generated from its declaration.
    assert "helm/parcel-desk/values.yaml" in created
    assert 'name: "parcel-desk"' in (copy / "helm" / "parcel-desk" / "values.yaml").read_text()
    assert "  parcel-desk:\n" in (copy / "helm" / "waybill" / "values.yaml").read_text()
    # Its NATS user in the cluster's values, so a cluster from deploy/nats admits it.
    assert "deploy/nats/accounts.yaml" in created
    accounts = (copy / "deploy" / "nats" / "accounts.yaml").read_text()
    assert "<< $WAYBILL_NKEY_PARCEL_DESK >>" in accounts

    # make lint, on what is new (ruff over everything: it is quick).
    _run([str(BIN / "ruff"), "check", "."], cwd=copy)
    _run([str(BIN / "ruff"), "format", "--check", "."], cwd=copy)
    _run([str(BIN / "mypy"), "services/parcel-desk/src", "tests/services/parcel_desk"], cwd=copy)

    # make test, on the new tests.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(copy)])}
    tested = _run([sys.executable, "-m", "pytest", "tests/services/parcel_desk", "-q",
                   "-p", "no:cacheprovider"], cwd=copy, env=env)  # fmt: skip
    assert "2 passed" in tested

    # waybill up: the service beside the installed ones in the local plan, then its process.
    sys.path.insert(0, str(src))
    try:
        from waybill_parcel_desk.app import service  # type: ignore[import-not-found,unused-ignore]
        from waybill_runtime.local.plan import LocalPlan
        from waybill_runtime.local.registry import installed_sandboxes, load_services

        consumed = {c.type for c in service.describe().consumes}
        assert consumed == {"io.waybill.order.released.v1"}
        plan = LocalPlan.make({**load_services(), "parcel-desk": service}, installed_sandboxes())
        environment = plan.service_environment("parcel-desk")
    finally:
        sys.path.remove(str(src))
        for module in [m for m in sys.modules if m.startswith("waybill_parcel_desk")]:
            del sys.modules[module]
    assert environment["WAYBILL_SERVICE"] == "parcel-desk"
    port = int(environment["WAYBILL_HTTP_PORT"])
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "from waybill_parcel_desk.app import service; raise SystemExit(service.main())"],
        cwd=copy,
        env={**env, **environment, "NATS_URL": nats_url, "WAYBILL_SUBJECT_PREFIX": "scaffolded",
             "WAYBILL_STATE_DIR": str(tmp_path / "state")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "parcel-desk" in output and "started" in output
