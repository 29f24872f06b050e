"""Convert a ComfyUI UI-format workflow (what people share) to the API format (what runs).

Uses the engine's own node definitions (`/object_info` data) to know each node's inputs, their
order and which of them are widgets, as the frontend does when it queues a prompt:
- widget values are read from `widgets_values` in input order; an INT/FLOAT with
  `control_after_generate` and a combo with an upload button each store one extra value; a
  widget with no stored value is left out (the engine then names it, or uses its default);
- links become [source_node_id, output_slot]; both link schemas are read (the classic arrays
  `[id, from_node, from_slot, to_node, to_slot, type]` and the newer objects with `origin_id`,
  `origin_slot`, `target_id`, `target_slot`); links through Reroute nodes are followed,
  PrimitiveNode values are inlined, bypassed nodes (mode 4) pass their matching input through,
  muted nodes (mode 2) and UI-only nodes (Note, MarkdownNote, groups) are dropped.
Problems with the file are raised as ConversionError with a one-line message.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UI_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
LINK_FIELDS = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")


class ConversionError(ValueError):
    pass


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    nodes, links = read_graph(workflow)
    prompt = {}
    for node in sorted(nodes.values(), key=lambda n: _id_key(str(n["id"]))):
        kind = node["type"]
        if kind in UI_ONLY or node.get("mode", 0) in (MUTED, BYPASSED):
            continue
        if kind not in object_info:
            raise ConversionError(f"unknown node type {kind!r} (node {node['id']}); is its "
                                  "custom node pack installed?")
        prompt[str(node["id"])] = {
            "class_type": kind,
            "inputs": _inputs(node, object_info[kind], nodes, links),
            "_meta": {"title": node.get("title") or object_info[kind].get("display_name", kind)},
        }
    return prompt


def skipped_outputs(workflow: dict, object_info: dict) -> list[str]:
    """Output nodes that will not run because they are muted or bypassed, one line each."""
    nodes, _links = read_graph(workflow)
    return [f"output node {n['id']} ({n['type']}) is "
            f"{'muted' if n.get('mode') == MUTED else 'bypassed'}, so it will not run"
            for n in nodes.values() if n.get("mode", 0) in (MUTED, BYPASSED)
            and object_info.get(n["type"], {}).get("output_node")]


def read_graph(workflow: dict) -> tuple[dict, dict]:
    """(node id -> node, link id -> [id, from, from_slot, to, to_slot, type]), checked."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise ConversionError("not a UI-format workflow: no list of 'nodes'")
    if workflow.get("definitions", {}).get("subgraphs"):
        raise ConversionError("workflows with subgraphs are not supported; unpack them first")
    nodes = {}
    for index, node in enumerate(workflow["nodes"]):
        if not isinstance(node, dict) or "id" not in node or not isinstance(node.get("type"), str):
            raise ConversionError(f"nodes[{index}] has no 'id' and 'type'")
        nodes[node["id"]] = node
    links = {}
    for index, link in enumerate(workflow.get("links") or []):
        if isinstance(link, dict):  # the newer schema: objects with named fields
            missing = [f for f in LINK_FIELDS[:5] if f not in link]
            if missing:
                raise ConversionError(f"links[{index}] lacks {', '.join(missing)}")
            link = [link[f] for f in LINK_FIELDS[:5]] + [link.get("type", "*")]
        elif not isinstance(link, list) or len(link) < 5:
            raise ConversionError(f"links[{index}] is neither [id, from_node, from_slot, "
                                  "to_node, to_slot, type] nor an object with origin_id/target_id")
        link = (list(link) + ["*"])[:6]
        links[link[0]] = link
    for node in nodes.values():
        for inp in node.get("inputs") or []:
            if inp.get("link") is not None and inp["link"] not in links:
                raise ConversionError(f"node {node['id']} input {inp.get('name')!r} uses link "
                                      f"{inp['link']}, which is not in the workflow's links")
    return nodes, links


def _id_key(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _inputs(node: dict, info: dict, nodes: dict, links: dict) -> dict:
    spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    names = list(order.get("required", [])) + list(order.get("optional", []))
    linked = {i["name"]: i.get("link") for i in node.get("inputs") or []
              if i.get("link") is not None}
    values = node.get("widgets_values") or []
    by_name = values if isinstance(values, dict) else None
    position = 0
    out = {}
    for name in names:
        input_type, options = _type_and_options(spec[name])
        is_widget = input_type in WIDGET_TYPES and not options.get("forceInput")
        value_here = None
        if is_widget:
            if by_name is not None:
                value_here = by_name.get(name)
            elif position < len(values):
                value_here = values[position]
            position += 1 + _extra_widget_values(input_type, name, options)
        if name in linked:
            source = _resolve(links[linked[name]], nodes, links)
            if source is not None:
                out[name] = source
                continue
        if is_widget and value_here is not None:  # missing: left out, never sent as None
            out[name] = value_here
    return out


def _type_and_options(entry) -> tuple[str, dict]:
    kind = entry[0]
    options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
    if isinstance(kind, list):
        return "COMBO", options
    return str(kind), options


def _extra_widget_values(input_type: str, name: str, options: dict) -> int:
    extra = 0
    if input_type in ("INT", "FLOAT") and options.get("control_after_generate"):
        extra += 1
    if input_type == "COMBO" and (options.get("control_after_generate")):
        extra += 1
    if any(options.get(flag) for flag in UPLOAD_FLAGS):
        extra += 1
    return extra


def _resolve(link: list, nodes: dict, links: dict, depth: int = 0):
    """[node_id, slot] of the real node feeding `link`, or a literal from a PrimitiveNode."""
    if depth > 100:
        raise ConversionError("link cycle through reroute/bypassed nodes")
    _, src_id, src_slot, _dst, _dslot, link_type = link[:6]
    src = nodes.get(src_id)
    if src is None:
        raise ConversionError(f"link {link[0]} comes from node {src_id}, which is not in the "
                              "workflow")
    if src["type"] == "Reroute":
        upstream = (src.get("inputs") or [{}])[0].get("link")
        return None if upstream is None else _resolve(links[upstream], nodes, links, depth + 1)
    if src["type"] == "PrimitiveNode":
        return (src.get("widgets_values") or [None])[0]
    if src.get("mode", 0) == BYPASSED:
        for inp in src.get("inputs") or []:
            if inp.get("link") is not None and inp.get("type") == link_type:
                return _resolve(links[inp["link"]], nodes, links, depth + 1)
        return None
    if src.get("mode", 0) == MUTED:
        return None
    return [str(src_id), src_slot]
