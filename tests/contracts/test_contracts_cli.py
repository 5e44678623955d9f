"""`waybill contracts export|check|snapshot`, including checks of edited copies of the contracts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

import waybill_contracts
from waybill_contracts.governance import BASELINE_PATH, load_baseline, take_snapshot
from waybill_runtime.cli import main
from waybill_runtime.local.registry import load_services

PACKAGE_DIR = Path(waybill_contracts.__file__).resolve().parent

REMOVE_FIELD = (
    "model.py",
    '    street2: Annotated[str | None, Meta(description="Second address line.")] = None\n',
    "",
)
CHANGE_TYPE = ("model.py", "    weight_kg: WeightKg\n", "    weight_kg: Annotated[str, Meta()]\n")
ADD_OPTIONAL_FIELD = (
    "model.py",
    "    weight_kg: WeightKg\n",
    "    weight_kg: WeightKg\n"
    '    sscc: Annotated[str | None, Meta(description="SSCC on the label.")] = None\n',
)
RENAME_SUBJECT = (
    "events/shipping.py",
    '    name: ClassVar[str] = "voided"\n',
    '    name: ClassVar[str] = "void"\n',
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exited.value.code
    assert isinstance(code, int)
    return code, out, err


def _edited_copy(tmp_path: Path, *edits: tuple[str, str, str]) -> Path:
    """A copy of the contracts source with each (file, old, new) edit applied once."""
    root = tmp_path / "edited"
    shutil.copytree(
        PACKAGE_DIR, root / "waybill_contracts", ignore=shutil.ignore_patterns("__pycache__")
    )
    for filename, old, new in edits:
        path = root / "waybill_contracts" / filename
        source = path.read_text()
        assert source.count(old) == 1, f"the edit no longer applies to {filename}: {old!r}"
        path.write_text(source.replace(old, new))
    return root


def _check_copy(source_root: Path) -> subprocess.CompletedProcess[str]:
    """Run `waybill contracts check` against the real baseline, importing the edited copy."""
    script = (
        "import waybill_contracts\n"
        "imported = waybill_contracts.__file__\n"
        f"assert imported.startswith({str(source_root)!r}), imported\n"
        "from waybill_runtime.cli import main\n"
        f"main(['contracts', 'check', '--baseline', {str(BASELINE_PATH)!r}])\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(source_root), os.environ.get("PYTHONPATH")])
        ),
    }
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_passes_on_the_contracts_as_committed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "contracts", "check")
    assert code == 0
    assert "compatible" in out


def test_check_fails_naming_a_removed_field_in_an_edited_copy(tmp_path: Path) -> None:
    result = _check_copy(_edited_copy(tmp_path, REMOVE_FIELD))
    assert result.returncode == 1, result.stderr
    assert "breaking: Address.street2: field removed" in result.stdout
    assert "1 breaking change(s)" in result.stdout


def test_check_fails_naming_a_changed_type_in_an_edited_copy(tmp_path: Path) -> None:
    result = _check_copy(_edited_copy(tmp_path, CHANGE_TYPE))
    assert result.returncode == 1, result.stderr
    assert "breaking: Parcel.weight_kg: type changed from float(ge=0) to str" in result.stdout


def test_check_names_every_breaking_change_on_its_own_line(tmp_path: Path) -> None:
    result = _check_copy(_edited_copy(tmp_path, REMOVE_FIELD, CHANGE_TYPE, RENAME_SUBJECT))
    assert result.returncode == 1, result.stderr
    breaking = [line for line in result.stdout.splitlines() if line.startswith("breaking: ")]
    assert len(breaking) == 3
    assert any("subject renamed: waybill.evt.shipment.voided.v1 -> " in b for b in breaking)


def test_check_passes_an_added_optional_field_in_an_edited_copy(tmp_path: Path) -> None:
    result = _check_copy(_edited_copy(tmp_path, ADD_OPTIONAL_FIELD))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "additive: Parcel.sscc: optional field added" in result.stdout
    assert "waybill contracts snapshot" in result.stdout


def test_snapshot_writes_a_baseline_that_check_then_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.json"
    code, out, _ = _run(capsys, "contracts", "snapshot", "--baseline", str(baseline))
    assert code == 0
    assert str(baseline) in out
    # The contracts as they are now (the committed baseline may be an older release).
    assert load_baseline(baseline) == take_snapshot()
    code, out, _ = _run(capsys, "contracts", "check", "--baseline", str(baseline))
    assert (code, "compatible with the baseline" in out) == (0, True)


def _baseline_with_an_extra_field(tmp_path: Path) -> Path:
    # A baseline that has a field the contracts lack: as if the field were removed.
    raw = msgspec.json.decode(BASELINE_PATH.read_bytes())
    raw["structs"]["Parcel"]["fields"]["sscc"] = {"type": "str", "required": True}
    path = tmp_path / "baseline.json"
    path.write_bytes(msgspec.json.encode(raw))
    return path


def test_snapshot_refuses_to_bless_a_breaking_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = _baseline_with_an_extra_field(tmp_path)
    before = baseline.read_bytes()
    code, out, err = _run(capsys, "contracts", "snapshot", "--baseline", str(baseline))
    assert code == 1
    assert "breaking: Parcel.sscc: field removed" in out
    assert "--accept-breaking" in err
    assert baseline.read_bytes() == before


def test_snapshot_blesses_a_breaking_change_when_told_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = _baseline_with_an_extra_field(tmp_path)
    code, _, _ = _run(
        capsys, "contracts", "snapshot", "--baseline", str(baseline), "--accept-breaking"
    )
    assert code == 0
    assert "sscc" not in load_baseline(baseline).structs["Parcel"].fields


def test_check_without_a_baseline_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "contracts", "check", "--baseline", str(tmp_path / "none.json"))
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("waybill: error: no baseline at")


def test_export_writes_schemas_and_asyncapi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "contracts", "export", str(tmp_path / "api"), "--prefix", "staging")
    assert code == 0
    assert "asyncapi.json" in out
    document = msgspec.json.decode((tmp_path / "api" / "asyncapi.json").read_bytes())
    assert "staging.evt.order.released.v1" in {c["address"] for c in document["channels"].values()}
    assert (tmp_path / "api" / "schemas" / "io.waybill.order.released.v1.json").is_file()


def test_export_writes_the_openapi_document_of_every_installed_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "contracts", "export", str(tmp_path / "api"))
    assert code == 0
    assert "OpenAPI documents" in out
    services = load_services()
    written = sorted(p.name for p in (tmp_path / "api" / "openapi").iterdir())
    assert written == sorted(f"{name}.json" for name in services)
    for name, service in services.items():
        document = msgspec.json.decode((tmp_path / "api" / "openapi" / f"{name}.json").read_bytes())
        assert document == service.openapi()
        validate(document, cls=OpenAPIV31SpecValidator)


def test_export_to_an_unwritable_place_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = _run(capsys, "contracts", "export", str(blocker / "api"))
    assert code == 2
    assert err.startswith("waybill: error: cannot write to")


def test_export_refuses_a_bad_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "contracts", "export", str(tmp_path), "--prefix", "a.b")
    assert code == 2
    assert "--prefix" in err


def test_every_contracts_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "contracts", "--help")
    assert code == 0
    for command in ("export", "check", "snapshot"):
        assert command in out
        assert _run(capsys, "contracts", command, "--help")[0] == 0
