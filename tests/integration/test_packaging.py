"""The wheel installs into a fresh venv and twistd finds the plugin there."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(ROOT)], check=True)
    wheels = list(out.glob("wsgate-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_has_plugin_but_no_plugins_init(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/wsgate_plugin.py" in names
    assert "twisted/plugins/__init__.py" not in names
    assert "twisted/__init__.py" not in names
    assert not [n for n in names if n.endswith("dropin.cache")]
    assert "wsgate/tap.py" in names


def test_fresh_venv_lists_plugin(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    subprocess.run([str(bin_dir / "pip"), "install", "-q", str(wheel)], check=True)

    helped = subprocess.run([str(bin_dir / "twistd"), "--help"], capture_output=True,
                            text=True, check=True)
    assert "wsgate" in helped.stdout

    own = subprocess.run([str(bin_dir / "twistd"), "wsgate", "--help"], capture_output=True,
                         text=True, check=True)
    assert "--configFile" in own.stdout
    assert "--strict" in own.stdout

    script = subprocess.run([str(bin_dir / "wsgate"), "--help"], capture_output=True,
                            text=True, check=True)
    assert "--configFile" in script.stdout
