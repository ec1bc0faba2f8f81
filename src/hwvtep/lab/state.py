"""The lab's state file: the inventory of everything `up` created, so `down` can undo it.

Each object (namespace, veth pair, process, file, directory) is recorded *before* it is
created, so a crash or a failed `up` leaves a file that still names everything that might
exist. `down` removes exactly the objects listed here, dropping each entry once it is gone
(a crashed `down` resumes where it stopped), and touches nothing else.

Layout: ``ROOT/<lab name>/state.json`` with ROOT = ``$HWVTEP_LAB_DIR`` or
``/run/hwvtep-lab`` (tmpfs, so, like the namespaces, it does not outlive a reboot).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwvtep.lab.topology import Topology, parse

STATE_VERSION = 1
STATE_FILE = "state.json"
DEFAULT_ROOT = "/run/hwvtep-lab"

# phases of a lab
CREATING = "creating"  # `up` started and has not finished (or crashed)
UP = "up"
REMOVING = "removing"  # `down` started and has not finished (or crashed)

Obj = dict[str, Any]


class LabError(Exception):
    """A lab operation that cannot go on; the message is meant for the user."""


def default_root() -> Path:
    return Path(os.environ.get("HWVTEP_LAB_DIR") or DEFAULT_ROOT)


@dataclass(slots=True)
class LabState:
    """One lab's persisted inventory. Mutable on purpose: it grows as `up` proceeds."""

    path: Path
    lab: str
    lab_id: str
    source_file: str
    source_text: str
    phase: str = CREATING
    created: float = 0.0
    objects: list[Obj] = field(default_factory=list)

    # -- naming
    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def prefix(self) -> str:
        """Starts every namespace name of this lab run; unique thanks to `lab_id`."""
        return f"hwl-{self.lab}-{self.lab_id}-"

    def namespace(self, node: str) -> str:
        return self.prefix + node

    def topology(self) -> Topology:
        return parse(self.source_text, self.source_file)

    # -- persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "lab": self.lab,
            "id": self.lab_id,
            "phase": self.phase,
            "created": self.created,
            "source_file": self.source_file,
            "source_text": self.source_text,
            "objects": self.objects,
        }

    def save(self) -> None:
        # write-then-rename: a reader (or a crash) never sees half a file. No fsync: the
        # objects we track do not survive a machine crash either.
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> LabState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read lab state {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise LabError(f"{path} is not a version {STATE_VERSION} lab state file")
        try:
            return cls(
                path=path,
                lab=str(data["lab"]),
                lab_id=str(data["id"]),
                source_file=str(data["source_file"]),
                source_text=str(data["source_text"]),
                phase=str(data["phase"]),
                created=float(data["created"]),
                objects=list(data["objects"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"{path} is damaged: {exc!r}") from None

    @classmethod
    def create(cls, root: Path, topo: Topology, source_text: str) -> LabState:
        """Start the inventory of a new lab run: its directory and the state file itself."""
        root.mkdir(parents=True, exist_ok=True)
        directory = root / topo.name
        try:
            directory.mkdir()
        except FileExistsError:
            if any(directory.iterdir()):
                raise LabError(f"{directory} exists and holds no lab state; "
                               "remove it or choose another lab name") from None
        state = cls(
            path=directory / STATE_FILE,
            lab=topo.name,
            lab_id=secrets.token_hex(3),
            source_file=os.path.abspath(topo.source),
            source_text=source_text,
            created=time.time(),
            objects=[{"kind": "dir", "path": str(directory)},
                     {"kind": "file", "path": str(directory / STATE_FILE)}],
        )
        state.save()
        return state

    # -- inventory
    def record(self, obj: Obj) -> Obj:
        """Add an object about to be created and persist it before the caller creates it."""
        self.objects.append(obj)
        self.save()
        return obj

    def forget(self, obj: Obj) -> None:
        """Drop an object that is gone."""
        self.objects = [o for o in self.objects if o is not obj]
        if obj.get("kind") == "file" and obj.get("path") == str(self.path):
            return  # the state file itself is removed by the caller, last
        self.save()

    def find(self, kind: str, **match: Any) -> Obj | None:
        for obj in self.objects:
            if obj.get("kind") == kind and all(obj.get(k) == v for k, v in match.items()):
                return obj
        return None

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind]

    def netns_of(self, node: str) -> str:
        obj = self.find("netns", node=node)
        if obj is None:
            raise LabError(f"lab {self.lab} has no node {node}")
        return str(obj["name"])


def state_path(root: Path, lab: str) -> Path:
    return root / lab / STATE_FILE


def find_lab(root: Path, lab: str) -> LabState | None:
    path = state_path(root, lab)
    return LabState.load(path) if path.exists() else None


def list_labs(root: Path) -> list[LabState]:
    if not root.is_dir():
        return []
    labs = []
    for sub in sorted(root.iterdir()):
        path = sub / STATE_FILE
        if path.is_file():
            with contextlib.suppress(LabError):
                labs.append(LabState.load(path))
    return labs


def pick_lab(root: Path, lab: str | None) -> LabState:
    """The named lab, or, with no name, the only lab there is."""
    if lab is not None:
        state = find_lab(root, lab)
        if state is None:
            raise LabError(f"no lab named {lab} under {root}")
        return state
    labs = list_labs(root)
    if not labs:
        raise LabError(f"no lab is up (nothing under {root})")
    if len(labs) > 1:
        names = ", ".join(s.lab for s in labs)
        raise LabError(f"several labs are up ({names}); name one")
    return labs[0]


@contextlib.contextmanager
def locked(root: Path, timeout: float = 30.0) -> Iterator[None]:
    """Serialise lab commands that change things (two `up`s must not interleave)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise LabError(f"another hwvtep lab command holds {root}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
