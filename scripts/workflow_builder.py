"""Build a UI-format workflow (and its API twin) from a short Python description.

The gallery's workflows are written with this so widget order, links and layout always match
the engine's node definitions. Usage (from a script run by scripts/build_workflows.py):

    wf = Workflow(object_info)
    model = wf.add("GANStudioLoadModel", ckpt_name="demo.safetensors")
    lat = wf.add("GANStudioSampleLatents", model=model.out(0), seed=0, batch_size=16)
    wf.note("Change the seed ...", near=lat)
    wf.ui(), wf.api()
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ui_to_api import WIDGET_TYPES, _extra_widget_values, _type_and_options, ui_to_api

COLUMN_WIDTH, ROW_GAP = 360, 40


@dataclass
class Socket:
    node: "NodeRef"
    slot: int


@dataclass
class NodeRef:
    id: int
    type: str
    depth: int = 0
    values: dict = field(default_factory=dict)

    def out(self, slot: int = 0) -> Socket:
        return Socket(self, slot)


class Workflow:
    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[dict] = []
        self.refs: list[NodeRef] = []
        self.links: list[list] = []
        self.notes: list[tuple[str, NodeRef | None]] = []

    def add(self, node_type: str, title: str | None = None, models: list | None = None,
            **inputs) -> NodeRef:
        if node_type not in self.info:
            raise KeyError(f"unknown node type {node_type}")
        info = self.info[node_type]
        spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        unknown = set(inputs) - set(order)
        if unknown:
            raise KeyError(f"{node_type} has no input(s) {sorted(unknown)}")
        ref = NodeRef(len(self.nodes) + 1, node_type)
        node = {"id": ref.id, "type": node_type, "pos": [0, 0], "size": [320, 120], "flags": {},
                "order": 0, "mode": 0, "inputs": [], "outputs": [],
                "properties": {"Node name for S&R": node_type}, "widgets_values": []}
        if title:
            node["title"] = title
        if models:
            node["properties"]["models"] = models
        depth = 0
        for name in order:
            kind, options = _type_and_options(spec[name])
            value = inputs.get(name, options.get("default"))
            if isinstance(value, Socket):
                link_id = len(self.links) + 1
                src_type = self.info[value.node.type]["output"][value.slot]
                self.links.append([link_id, value.node.id, value.slot, ref.id,
                                   len(node["inputs"]), src_type])
                entry = {"name": name, "type": src_type if kind not in WIDGET_TYPES else kind,
                         "link": link_id}
                if kind in WIDGET_TYPES:
                    entry["widget"] = {"name": name}
                node["inputs"].append(entry)
                self.nodes[value.node.id - 1]["outputs"][value.slot]["links"].append(link_id)
                depth = max(depth, value.node.depth + 1)
            if kind in WIDGET_TYPES and not options.get("forceInput"):
                if kind == "COMBO" and value is None:
                    value = (options.get("options") or spec[name][0] or [None])[0]
                node["widgets_values"].append(None if isinstance(value, Socket) else value)
                node["widgets_values"].extend(
                    ["fixed"] * _extra_widget_values(kind, name, options)
                    if not any(options.get(k) for k in ("image_upload", "video_upload"))
                    else ["image"])
            elif not isinstance(value, Socket) and name in inputs:
                raise ValueError(f"{node_type}.{name} is a socket: connect a node output")
        for slot, (out_type, out_name) in enumerate(zip(info["output"], info["output_name"])):
            node["outputs"].append({"name": out_name, "type": out_type, "links": [],
                                    "slot_index": slot})
        ref.depth = depth
        self.nodes.append(node)
        self.refs.append(ref)
        return ref

    def note(self, text: str, near: NodeRef | None = None) -> None:
        self.notes.append((text, near))

    def _layout(self) -> None:
        rows: dict[int, int] = {}
        for ref, node in zip(self.refs, self.nodes):
            height = 60 + 26 * (len(node["widgets_values"]) + max(len(node["inputs"]),
                                                                   len(node["outputs"])))
            node["size"] = [320, height]
            y = rows.get(ref.depth, 140)
            node["pos"] = [100 + ref.depth * COLUMN_WIDTH, y]
            rows[ref.depth] = y + height + ROW_GAP
        for order, node in enumerate(sorted(self.nodes, key=lambda n: n["pos"][0])):
            node["order"] = order

    def ui(self) -> dict:
        self._layout()
        nodes = [dict(n) for n in self.nodes]
        next_id = len(nodes) + 1
        for text, near in self.notes:
            x = 100 if near is None else self.nodes[near.id - 1]["pos"][0]
            bottom = max((n["pos"][1] + n["size"][1] for n in nodes
                          if n["pos"][0] == x), default=0)
            nodes.append({"id": next_id, "type": "MarkdownNote", "pos": [x, bottom + ROW_GAP],
                          "size": [320, 160], "flags": {}, "order": len(nodes), "mode": 0,
                          "inputs": [], "outputs": [], "properties": {},
                          "widgets_values": [text], "color": "#432", "bgcolor": "#653"})
            next_id += 1
        return {"last_node_id": next_id - 1, "last_link_id": len(self.links), "nodes": nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.9, "offset": [0, 0]}}, "version": 0.4}

    def api(self) -> dict:
        return ui_to_api(self.ui(), self.info)
