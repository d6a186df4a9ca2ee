"""`pip install .` ships a working package: modules, frontend, entry point."""

import subprocess
import sys
import zipfile


from tb_attention_plugin import plugin_loader


def test_wheel_contains_frontend_proto_and_entry_point(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        check=True,
    )
    (wheel,) = tmp_path.glob("tb_attention-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in [
        "tb_attention_plugin/callback.py",
        "tb_attention_plugin/plugin_data_pb2.py",
        "tb_attention_plugin/http_api.md",
        "tb_attention_plugin/frontend/index.js",
        "demo_models/imdb.py",
    ]:
        assert expected in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[tensorboard_plugins]" in entry_points
    assert "attention = tb_attention_plugin.plugin_loader:AttentionPluginLoader" in entry_points


def test_plugin_import_error_leaves_tensorboard_running(monkeypatch, caplog):
    # An import failure inside the plugin makes load() return None (tab
    # missing, reason logged) instead of raising into TensorBoard's start-up.
    monkeypatch.setitem(sys.modules, "tb_attention_plugin.attention_plugin", None)
    assert plugin_loader.AttentionPluginLoader().load(context=None) is None
    assert "could not be imported" in caplog.text


def test_loader_keeps_all_steps_unless_the_user_says_otherwise():
    class Flags:
        samples_per_plugin = {}

    plugin_loader.AttentionPluginLoader().fix_flags(Flags)
    assert Flags.samples_per_plugin == {"attention": 0}
    Flags.samples_per_plugin = {"attention": 20}
    plugin_loader.AttentionPluginLoader().fix_flags(Flags)
    assert Flags.samples_per_plugin == {"attention": 20}


def test_importing_the_package_does_not_import_keras():
    code = "import sys, tb_attention_plugin.plugin_loader; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
