"""How the package is laid out (README, "How the code is laid out"): floors from the ground up, each module
importing only from its own floor or below, no import loop anywhere (imports inside functions, the family
registry's `import_module` loads and the package's lazy exports counted), and small rooms: no module over 650
lines, no class over 300. Read from the source with `ast`; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import video_gen

PACKAGE = Path(video_gen.__file__).parent
# From the ground floor up; a module's floor is its first name under video_gen (families.wan -> families).
FLOORS = (
    ("ground floor", {"version", "errors", "events", "planner", "console", "devices", "images", "frames",
                      "interpolate", "demo", "control", "annotators", "audio"}),
    ("checkpoints", {"checkpoints"}),
    ("families", {"families"}),
    ("loras, memory, tiny models, upscalers, prompt enhancers", {"loras", "memory", "tiny", "upscale", "enhance"}),
    ("request, catalog", {"request", "catalog"}),
    ("video_io, results, downloads", {"video_io", "results", "downloads"}),
    ("history, running job, reports, smoothing, finishing", {"history", "running", "reports", "smoothing",
                                                              "finishing"}),
    ("engine and what runs jobs", {"engine", "timing", "extend", "sweep", "batch"}),
    ("doors", {"batch_ray", "cli", "web", "__main__", ""}),  # "": the package itself (its lazy exports)
)
MAX_MODULE_LINES = 650
MAX_CLASS_LINES = 300


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name (video_gen.x.y) -> (file, is a package's __init__)."""
    found = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        found[".".join(parts)] = (file, package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every module's imports of the package's modules: import statements anywhere in it (module level, inside
    functions, under TYPE_CHECKING), the registry's loads of its family modules and the package's lazy exports."""
    found = modules()
    edges: dict[str, set[str]] = {name: set() for name in found}

    def known(target: str) -> str | None:
        while target not in found and "." in target:
            target = target.rsplit(".", 1)[0]
        return target if target in found else None

    for name, (file, package) in found.items():
        tree = ast.parse(file.read_text())
        base = name.split(".") if package else name.split(".")[:-1]
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                stem = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in found else stem for alias in node.names]
            for target in targets:
                if target and target.split(".")[0] == "video_gen" and (module := known(target)) and module != name:
                    edges[name].add(module)
        if name == "video_gen":  # the lazy exports: `_EXPORTS = {"Generator": "engine", …}`
            exports = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                           and any(getattr(target, "id", "") == "_EXPORTS" for target in node.targets))
            edges[name] |= {f"video_gen.{module}" for module in ast.literal_eval(exports).values()}
    registry = "video_gen.families"  # loads the modules of its package with importlib
    edges[registry] |= {name for name in found if name.startswith(registry + ".") and name.count(".") == 2
                        and not name.rsplit(".", 1)[1].startswith("_")}
    return edges


def floor_of(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    return next(index for index, (_, names) in enumerate(FLOORS) if first in names)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_floor():
    assert [name for name in modules() if not any(
        (name.split(".")[1] if "." in name else "") in names for _, names in FLOORS)] == []


def test_no_import_loop_anywhere():
    assert cycles(import_graph()) == []


def test_each_module_imports_only_its_floor_or_those_below():
    upward = [f"{module} ({FLOORS[floor_of(module)][0]}) imports {target} ({FLOORS[floor_of(target)][0]})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if floor_of(target) > floor_of(module)]
    assert upward == []


def test_family_modules_never_import_the_registry():
    """The registry imports every family module; a family that imported it back would make a loop."""
    edges = import_graph()
    assert [name for name in edges if name.startswith("video_gen.families.") and "video_gen.families" in edges[name]] \
        == []


def test_small_rooms():
    big_modules, big_classes = [], []
    for name, (file, _) in modules().items():
        text = file.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            big_modules.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                big_classes.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert big_modules == [] and big_classes == []


def test_the_checks_can_fail():
    """A loop and an upward import are found when they are there."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert floor_of("video_gen.web.fields") > floor_of("video_gen.request") > floor_of("video_gen.checkpoints")


def test_every_package_is_installed():
    """pyproject's package list names every package of the tree (a non-editable install would miss one)."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {name for name, (_, package) in modules().items() if package}
    assert found == listed
