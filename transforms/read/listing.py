"""A glob's files as a stream, a page or a directory at a time: no process holds a listing of the whole input.

Beam's match returns one list of every file (FileSystem.match builds
`metadata_list`), and its GCS listing also keeps a set of every name it has
listed (gcsio.list_files): at 10^8 objects, gigabytes in one process before the
first file flows on. Here:
  - gs://: google-cloud-storage's list_blobs, one page of up to 1,000 names and
    sizes at a time, each page's files yielded before the next page is asked for;
  - local disk: os.walk, a directory at a time, one stat per matched file;
  - any other Beam filesystem: Beam's match (one list; no streaming listing for it).
Files are those Beam's match would give for the same glob (its own pattern
translation, FileSystem.translate_pattern), in the listing's order: names in
order on gs://, the walk's order on local disk.
"""
import os
import re
from typing import Iterator, NamedTuple, Optional

from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from transforms.read import storage

_LITERAL = re.compile(r'^[^[*?]*')
PAGE_SIZE = 1000  # names per gs:// list request (GCS's most)


class Listed(NamedTuple):
  """What the listing knows of a file (Beam's FileMetadata has the same two fields)."""
  path: str
  size_in_bytes: Optional[int]


def _local(glob: str, matches) -> Iterator[Listed]:
  literal = _LITERAL.match(glob).group(0)
  if literal == glob:  # no wildcard: the file itself
    if os.path.isfile(glob):
      yield Listed(glob, os.path.getsize(glob))
    return
  root = literal if literal.endswith('/') else os.path.dirname(literal)
  for directory, _, names in os.walk(root or '.'):
    for name in names:
      path = os.path.join(directory, name)
      if matches(path):
        try:
          yield Listed(path, os.path.getsize(path))
        except OSError:  # gone since it was listed: reading it will say so, as Beam's listing does
          continue


def _gcs(glob: str, matches, anonymous: bool) -> Iterator[Listed]:
  bucket, prefix = storage.split(_LITERAL.match(glob).group(0))
  client = storage.list_client(anonymous)
  for blob in client.list_blobs(bucket, prefix=prefix, page_size=PAGE_SIZE, fields='items(name,size),nextPageToken'):
    path = f'{storage.GCS}{bucket}/{blob.name}'
    if not blob.name.endswith('/') and matches(path):  # a name ending in / is a folder placeholder
      yield Listed(path, blob.size)


def files(glob: str, anonymous: bool = False) -> Iterator[Listed]:
  """The files the glob matches (a glob as Beam's FileSystems.match takes it), as they are listed."""
  if glob.endswith('/'):
    glob += '*'  # as Beam's match reads a trailing slash
  matches = re.compile(FileSystem.translate_pattern(glob)).match
  if storage.is_gcs(glob):
    yield from _gcs(glob, matches, anonymous)
  elif FileSystems.get_scheme(glob) is None:
    yield from _local(glob, matches)
  else:
    for found in FileSystems.match([glob])[0].metadata_list:
      yield Listed(found.path, found.size_in_bytes)
