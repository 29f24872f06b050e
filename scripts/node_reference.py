"""Write docs/nodes.md, the node reference, from the nodes' own schemas.

    .venv/bin/python scripts/node_reference.py          # rewrite docs/nodes.md
    .venv/bin/python scripts/node_reference.py --check  # exit 1 if it is out of date

The text comes from each node's define_schema (display name, description, inputs with
defaults and tooltips, outputs), so the reference cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "docs" / "nodes.md"
FILE_SUFFIXES = {".safetensors", ".pkl", ".pt", ".pth", ".png", ".jpg", ".jpeg", ".webp"}


def render(object_info: dict) -> str:
    ours = {k: v for k, v in object_info.items() if k.startswith("GANStudio")}
    lines = ["# Node reference", "",
             "Generated from the node schemas by `scripts/node_reference.py`; do not edit by hand.",
             ""]
    by_category: dict[str, list[str]] = {}
    for name, info in ours.items():
        by_category.setdefault(info["category"], []).append(name)
    for category in sorted(by_category):
        lines += [f"## {category}", ""]
        for name in sorted(by_category[category], key=lambda n: ours[n]["display_name"]):
            lines += _node(name, ours[name])
    return "\n".join(lines).rstrip() + "\n"


def _node(name: str, info: dict) -> list[str]:
    out = [f"### {info['display_name']}", "", f"`{name}`: {info['description']}", ""]
    rows = []
    for group in ("required", "optional"):
        for input_name, entry in info["input"].get(group, {}).items():
            kind = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if isinstance(kind, list) or kind == "COMBO":
                choices = kind if isinstance(kind, list) else options.get("options", [])
                if not choices or any(Path(str(c)).suffix in FILE_SUFFIXES for c in choices):
                    kind = "file"  # lists of files depend on the install: never inline them
                else:
                    kind = " / ".join(map(str, choices))
            default = options.get("default", "")
            optional = " (optional)" if group == "optional" else ""
            rows.append(f"| `{input_name}`{optional} | {kind} | {_cell(default)} | "
                        f"{_cell(options.get('tooltip', ''))} |")
    if rows:
        out += ["| Input | Type | Default | What it does |", "| --- | --- | --- | --- |", *rows, ""]
    outputs = list(zip(info.get("output", []), info.get("output_name", []),
                       info.get("output_tooltips") or [""] * len(info.get("output", []))))
    if outputs:
        out += ["| Output | Type | What it is |", "| --- | --- | --- |"]
        out += [f"| `{n}` | {t} | {_cell(tip)} |" for t, n, tip in outputs]
        out.append("")
    return out


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    from comfy_engine import Engine
    from run_workflow import engine_object_info

    text = render(engine_object_info(Engine.get()))
    if "--check" in argv:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run scripts/node_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    print(TARGET.relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
