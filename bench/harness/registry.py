"""The model registry: servers/models.txt, read once (docs/architecture.md §5).

Every tool that needs the list of models (harness, charts, report, conformance tests) asks this
module, so adding a model is one line in servers/models.txt and its own folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REGISTRY = Path(__file__).resolve().parents[2] / "servers" / "models.txt"

GROUPS = ["card", "lecture", "python", "production", "reference"]
KINDS = {"cpp", "python", "reference"}
STYLES = {"blocking", "callbacks", "coroutines", "green-threads", "reference"}
SERVES = {"all", "static"}


@dataclass(frozen=True)
class Model:
    name: str
    group: str
    kind: str          # cpp | python | reference
    style: str         # blocking | callbacks | coroutines | green-threads | reference
    serves: str        # all | static
    description: str

    @property
    def binary(self) -> str | None:
        """File name under build/bin (None for reference servers, started from bench/reference)."""
        return None if self.kind == "reference" else f"server-{self.name}"

    @property
    def is_reference(self) -> bool:
        return self.kind == "reference"

    @property
    def source(self) -> str:
        """The model's own code, relative to the repository (what its lines-of-code count covers)."""
        if self.kind == "cpp":
            return f"servers/{self.name}"
        if self.kind == "python":
            return f"servers/python/{self.name.replace('-', '_')}.py"
        return f"bench/reference/{self.name}"


def load(path: Path = REGISTRY) -> list[Model]:
    models: list[Model] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("name "):
            continue
        fields = line.split(None, 5)
        if len(fields) < 6:
            raise ValueError(f"{path}:{lineno}: want 6 columns, got {len(fields)}: {raw!r}")
        m = Model(*fields)
        if m.group not in GROUPS or m.kind not in KINDS or m.style not in STYLES or m.serves not in SERVES:
            raise ValueError(f"{path}:{lineno}: unknown group, kind, style or serves: {raw!r}")
        if any(m.name == other.name for other in models):
            raise ValueError(f"{path}:{lineno}: {m.name} listed twice")
        models.append(m)
    return models


MODELS: list[Model] = load()
BY_NAME: dict[str, Model] = {m.name: m for m in MODELS}
NAMES: list[str] = [m.name for m in MODELS]


def group(name: str) -> list[str]:
    return [m.name for m in MODELS if m.group == name]


def expand(selection: str | list[str] | None, default: list[str] | None = None) -> list[str]:
    """'card,py-asyncio' -> model names in registry order; group names stand for their models.
    Raises ValueError naming what is unknown."""
    if selection is None or selection == "" or selection == []:
        return list(default if default is not None else NAMES)
    items = selection.split(",") if isinstance(selection, str) else list(selection)
    wanted: set[str] = set()
    unknown = []
    for item in (x.strip() for x in items):
        if not item:
            continue
        if item in GROUPS:
            wanted.update(group(item))
        elif item in BY_NAME:
            wanted.add(item)
        else:
            unknown.append(item)
    if unknown:
        raise ValueError(f"unknown model or group: {', '.join(unknown)} "
                         f"(groups: {', '.join(GROUPS)}; models: {', '.join(NAMES)})")
    return [n for n in NAMES if n in wanted]


if __name__ == "__main__":  # `python3 bench/harness/registry.py [kind]`: names, one a line
    import sys
    kind = sys.argv[1] if len(sys.argv) > 1 else None
    for m in MODELS:
        if kind is None or m.kind == kind:
            print(m.name)
