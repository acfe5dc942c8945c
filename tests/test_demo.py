"""`tidegate demo`, run through its library function: every step must prove itself."""

from __future__ import annotations

from pathlib import Path

from tidegate.demo import run_demo


def test_the_demo_proves_capture_exports_and_load(tmp_path: Path) -> None:
    said: list[str] = []
    report = run_demo(tmp_path / "demo", said.append)
    assert report.ok, report.per_table
    assert report.target_equal, report.compared
    assert set(report.compared) == {"customer", "order", "order line"}
    assert any(line.startswith("verify: every export checks out") for line in said)
    assert len(report.folders) >= 3
