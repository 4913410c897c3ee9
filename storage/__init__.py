"""Storage: URIs over local paths and S3, atomic writes, checksums, verified transfers."""

from smelt.storage.checksums import sha256_bytes, sha256_file, sha256_uri
from smelt.storage.objects import (
    atomic_local_path,
    delete,
    exists,
    file_details,
    get_file,
    glob,
    is_dir,
    list_files,
    open_read,
    put_file,
    read_bytes,
    read_range,
    read_text,
    size,
    write_bytes,
    write_text,
)
from smelt.storage.preflight import require_readable, require_writable
from smelt.storage.uri import basename, filesystem, is_s3, join, normalize, parent

__all__ = [
    "atomic_local_path",
    "basename",
    "delete",
    "exists",
    "file_details",
    "filesystem",
    "get_file",
    "glob",
    "is_dir",
    "is_s3",
    "join",
    "list_files",
    "normalize",
    "open_read",
    "parent",
    "put_file",
    "read_bytes",
    "read_range",
    "read_text",
    "require_readable",
    "require_writable",
    "sha256_bytes",
    "sha256_file",
    "sha256_uri",
    "size",
    "write_bytes",
    "write_text",
]
