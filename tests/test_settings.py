from pathlib import Path

import pytest

from xrh.settings import Settings, load_settings


def test_defaults_keep_everything_under_data():
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.warehouse == Path("data/warehouse.sqlite")
    assert settings.physionet_files == Path("data/physionet.org/files")


def test_environment_overrides_file_and_moves_derived_paths(tmp_path):
    config = tmp_path / "xrh.yaml"
    config.write_text("seed: 5\ndevice: cpu\n")
    settings = load_settings(config, environ={"XRH_DATA_ROOT": str(tmp_path / "root"), "XRH_SEED": "9"})
    assert settings.seed == 9
    assert settings.device == "cpu"
    assert settings.warehouse == tmp_path / "root" / "warehouse.sqlite"
    assert settings.cache_dir == tmp_path / "root" / "cache"
    assert settings.prefect_home == tmp_path / "root" / "prefect"


def test_explicit_warehouse_is_kept_when_data_root_moves(tmp_path):
    config = tmp_path / "xrh.yaml"
    config.write_text(f"data_root: {tmp_path / 'r'}\nwarehouse: {tmp_path / 'w.sqlite'}\n")
    settings = load_settings(environ={"XRH_CONFIG": str(config)})
    assert settings.warehouse == tmp_path / "w.sqlite"
    assert settings.cache_dir == tmp_path / "r" / "cache"


def test_unknown_key_names_the_file(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("warehose: x.sqlite\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*unknown settings \['warehose'\]"):
        load_settings(config, environ={})


def test_bad_value_names_the_variable():
    with pytest.raises(ValueError, match="XRH_SEED"):
        load_settings(environ={"XRH_SEED": "many"})
