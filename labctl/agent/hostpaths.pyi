# The typed face of hostpaths.py for the controller (the agent itself has no annotations: it
# runs on Python 2.6). Not shipped to hosts: the agent's zip holds only *.py.
from collections.abc import Callable
from typing import IO, Any

LStat = Callable[[str], Any]
NameOf = Callable[[int], str | None]

ROOT_BASE: str
USER_BASE: str
RUNS: str
WORK: str
MISSING: str
NOFOLLOW: int
PRIVATE_FILE: int
PRIVATE_DIR: int

class UnsafePath(Exception):
    path: str
    why: str
    def __init__(self, path: str, why: str) -> None: ...
    def line(self) -> str: ...

def base_for(uid: int, home: str) -> str: ...
def runs_of(base: str) -> str: ...
def work_of(base: str) -> str: ...
def default_base() -> str: ...
def path_problem(
    path: str,
    uid: int,
    lstat: LStat = ...,
    name_of: NameOf | None = ...,
    group_ok: bool = ...,
) -> tuple[str, str] | None: ...
def ensure_dir(
    path: str,
    uid: int,
    lstat: LStat = ...,
    mkdir: Callable[[str, int], Any] = ...,
    name_of: NameOf | None = ...,
) -> str: ...
def user_name(uid: int) -> str | None: ...
def local_problem(path: str) -> tuple[str, str] | None: ...
def ensure_local_dir(path: str) -> str: ...
def open_new(path: str, mode: int = ...) -> IO[bytes]: ...
def open_replacing(path: str, mode: int = ...) -> IO[bytes]: ...
def open_append(path: str, mode: int = ...) -> IO[bytes]: ...
