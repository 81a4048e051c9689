"""The run folder: results/<UTC timestamp>-<host>/.

Everything is written so that an interrupted run (Ctrl-C, a crash, a power cut) leaves valid
files: whole files are written to a temporary name in the same folder, fsynced, then renamed
over the old one (os.replace is atomic); runs.jsonl grows by one complete line per point,
fsynced, and a torn last line (if the machine died mid-write) is ignored on reading.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

RUNS = "runs.jsonl"
META = "meta.json"
SUMMARY = "summary.csv"
MICRO = "micro.json"
CHARTS = "charts"
REPORT = "report.md"


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


_UMASK = _umask()


def default_folder(results_root: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    host = socket.gethostname().split(".")[0] or "host"
    return results_root / f"{stamp}-{host}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)   # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def point_key(rec: dict) -> tuple:
    return (rec["experiment"], rec["model"], str(rec["param"]), int(rec["rep"]))


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    def create(self) -> "RunFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CHARTS).mkdir(exist_ok=True)
        return self

    @property
    def runs_path(self) -> Path:
        return self.path / RUNS

    def append_run(self, record: dict) -> None:
        """One complete JSON line per point, fsynced, so a crash loses at most the point that
        was running."""
        line = json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n"
        with open(self.runs_path, "a", encoding="utf-8") as f:
            # A previous crash may have left a torn line without a newline: start a fresh one.
            if f.tell() > 0:
                with open(self.runs_path, "rb") as r:
                    r.seek(-1, os.SEEK_END)
                    if r.read(1) != b"\n":
                        f.write("\n")
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def runs(self) -> list[dict]:
        return load_runs(self.runs_path)

    def completed(self) -> set[tuple]:
        return {point_key(r) for r in self.runs()}

    def meta(self) -> dict:
        return read_json(self.path / META, {}) or {}

    def write_meta(self, meta: dict) -> None:
        atomic_write_json(self.path / META, meta)


def load_runs(path: Path) -> list[dict]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue   # torn line from an interrupted write
                if isinstance(rec, dict) and "experiment" in rec:
                    out.append(rec)
    except FileNotFoundError:
        pass
    return out
