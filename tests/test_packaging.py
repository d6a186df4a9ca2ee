"""`pip install .` ships a working package: modules, frontend, entry point."""

import subprocess
import sys
import zipfile


from tb_attention_plugin.serving import plugin_loader


def test_wheel_contains_frontend_proto_and_entry_point(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        check=True,
    )
    (wheel,) = tmp_path.glob("tb_attention-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in [
        "tb_attention_plugin/writing/callback.py",
        "tb_attention_plugin/format/plugin_data_pb2.py",
        "tb_attention_plugin/serving/http_api.md",
        "tb_attention_plugin/frontend/index.js",
        "demo_models/imdb.py",
    ]:
        assert expected in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[tensorboard_plugins]" in entry_points
    assert "attention = tb_attention_plugin.serving.plugin_loader:AttentionPluginLoader" in entry_points


def test_plugin_import_error_leaves_tensorboard_running(monkeypatch, caplog):
    # An import failure inside the plugin makes load() return None (tab
    # missing, reason logged) instead of raising into TensorBoard's start-up.
    monkeypatch.setitem(sys.modules, "tb_attention_plugin.serving.attention_plugin", None)
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
    code = "import sys, tb_attention_plugin.serving.plugin_loader; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Which sub-packages each part may import (README, "Layout"): the format and
# the math are shared by both sides and import neither; the writing side and
# the serving side never import each other.
ALLOWED_IMPORTS = {
    "format": {"format"},
    "math": {"math"},
    "writing": {"writing", "format", "math"},
    "serving": {"serving", "format"},
}


def _package_imports(path):
    """The tb_attention_plugin sub-packages a module imports, by ast."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [node.module + "." + a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tb_attention_plugin" and len(parts) > 1 and parts[1] in ALLOWED_IMPORTS:
                found.add(parts[1])
    return found


def test_each_part_imports_only_the_parts_below_it():
    import pathlib

    import tb_attention_plugin

    root = pathlib.Path(tb_attention_plugin.__file__).parent
    seen = set()
    for part, allowed in ALLOWED_IMPORTS.items():
        modules = sorted((root / part).rglob("*.py"))  # writing/backends/ too
        assert len(modules) >= 3, part
        for module in modules:
            seen.add(module.name)
            assert _package_imports(module) <= allowed, "%s/%s imports %s" % (
                part, module.relative_to(root / part), sorted(_package_imports(module) - allowed))
    # Nothing but __init__.py is left at the top: every module has its part.
    assert {p.name for p in root.glob("*.py")} == {"__init__.py"}
    # The public names still import from the top.
    from tb_attention_plugin import AttentionCallback, read_attention, read_head_metrics, summary

    assert callable(AttentionCallback) and callable(read_attention) and callable(read_head_metrics)
    assert callable(summary.attention)


def test_every_package_folder_is_in_the_wheel():
    # setup.py lists packages by name: a new folder (writing/backends/) left
    # out installs without it, and the wheel fails on import, not here.
    import ast
    import pathlib

    repo = pathlib.Path(__file__).resolve().parent.parent
    listed = next(
        {elt.value for elt in kw.value.elts}
        for node in ast.walk(ast.parse((repo / "setup.py").read_text()))
        if isinstance(node, ast.Call) for kw in node.keywords if kw.arg == "packages")
    on_disk = {".".join(init.parent.relative_to(repo).parts)
               for init in (repo / "tb_attention_plugin").rglob("__init__.py")}
    assert on_disk - listed == set()
    assert "tb_attention_plugin.writing.backends" in listed
