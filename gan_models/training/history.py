"""Per-step metrics of a run, bounded in size however long the run gets.

Rows are kept one per step until `max_points`; then neighbouring rows are averaged in pairs
and each later row averages twice as many steps (so a million-step run still holds at most
`max_points` rows, evenly spread over the whole run).
"""

from __future__ import annotations

import math

import torch


class LossHistory:
    def __init__(self, max_points: int = 2048):
        self.max_points = max_points
        self.columns: dict[str, list[float]] = {"step": []}
        self.bin = 1                      # steps per stored row
        self.pending: list[dict] = []     # steps not yet merged into a row

    def add(self, step: int, metrics: dict[str, float]) -> None:
        self.pending.append({"step": float(step), **{k: float(v) for k, v in metrics.items()}})
        if len(self.pending) >= self.bin:
            self._append(_mean_rows(self.pending))
            self.pending = []
        if len(self.columns["step"]) > self.max_points:
            self._halve()

    def _append(self, row: dict[str, float]) -> None:
        n = len(self.columns["step"])
        for key in row:
            if key not in self.columns:
                self.columns[key] = [math.nan] * n
        for key, col in self.columns.items():
            col.append(row.get(key, math.nan))

    def _halve(self) -> None:
        n = len(self.columns["step"]) // 2 * 2
        for key, col in self.columns.items():
            merged = [_nanmean(col[i:i + 2]) for i in range(0, n, 2)]
            if key == "step":
                merged = [col[i + 1] for i in range(0, n, 2)]
            self.columns[key] = merged + col[n:]
        self.bin *= 2

    def as_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.columns.items()}

    def __len__(self) -> int:
        return len(self.columns["step"])

    def state_dict(self) -> dict:
        return {"max_points": self.max_points, "bin": self.bin, "pending": list(self.pending),
                "columns": {k: torch.tensor(v, dtype=torch.float64)
                            for k, v in self.columns.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.max_points, self.bin = int(state["max_points"]), int(state["bin"])
        self.pending = [dict(r) for r in state["pending"]]
        self.columns = {k: v.tolist() for k, v in state["columns"].items()}


def _mean_rows(rows: list[dict]) -> dict[str, float]:
    keys = {k for r in rows for k in r}
    out = {k: _nanmean([r.get(k, math.nan) for r in rows]) for k in keys}
    out["step"] = rows[-1]["step"]
    return out


def _nanmean(values: list[float]) -> float:
    good = [v for v in values if not math.isnan(v)]
    return sum(good) / len(good) if good else math.nan
