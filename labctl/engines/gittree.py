"""The git tree id of an archive's content, computed as git would from the files.

The commit id in a ``git archive`` header is only a comment: anyone can write it. The commit
object (kept in versions.py, checked against the commit id by its sha1) names its tree, and the
tree id is a hash of every file's bytes, mode and path: recomputing it from the archive proves
the content is the commit's, byte for byte, without git or the network.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from ..errors import ConfigError

#: a folder: entry name -> (git mode, binary sha1) or a sub-folder
Tree = dict[str, "tuple[str, bytes] | Tree"]


def git_object_id(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def _blob(data: bytes) -> bytes:
    return bytes.fromhex(git_object_id("blob", data))


def _tree_digest(node: Tree) -> bytes:
    entries: list[tuple[bytes, bytes]] = []  # (sort key, entry bytes)
    for name, value in node.items():
        raw = name.encode()
        if isinstance(value, dict):
            mode, digest, key = b"40000", _tree_digest(value), raw + b"/"
        else:
            mode, digest, key = value[0].encode(), value[1], raw
        entries.append((key, mode + b" " + raw + b"\0" + digest))
    body = b"".join(entry for _key, entry in sorted(entries))
    return bytes.fromhex(git_object_id("tree", body))


def archive_tree_id(path: Path) -> str:
    """The id of the tree whose ``git archive`` (one top folder, any name) ``path`` is."""
    root: Tree = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = [p for p in member.name.split("/")[1:] if p]
                if not parts or member.isdir():
                    continue  # git has no empty folders; folders come from their files
                node = root
                for part in parts[:-1]:
                    sub = node.setdefault(part, {})
                    if not isinstance(sub, dict):
                        raise ConfigError(f"{path}: {member.name} is below a file")
                    node = sub
                if member.issym():
                    node[parts[-1]] = ("120000", _blob(member.linkname.encode()))
                elif member.isfile():
                    fh = tar.extractfile(member)
                    data = fh.read() if fh is not None else b""
                    mode = "100755" if member.mode & 0o111 else "100644"
                    node[parts[-1]] = (mode, _blob(data))
                else:
                    raise ConfigError(
                        f"{path}: {member.name} is neither a file, a folder nor a symlink",
                        hint="use an archive made by `git archive`",
                    )
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ConfigError(
            f"{path} is not a readable tar archive ({exc})",
            hint="download it again (a `git archive` of the release tag)",
        ) from exc
    return _tree_digest(root).hex()


def commit_tree(commit_object: bytes) -> str:
    """The ``tree`` line of a raw commit object."""
    first = commit_object.split(b"\n", 1)[0].decode()
    kind, _, tree = first.partition(" ")
    if kind != "tree" or len(tree) != 40:
        raise ValueError("not a commit object")
    return tree
