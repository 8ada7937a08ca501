"""One run per output at a time: the lease OUT/_lease.json (run id, host, pid, start time, last heartbeat).

The claim on --output takes it before looking at the output, atomically (lease_store.py:
a hard link on local disk, an object create with if_generation_match=0 on gs://). A
second launch finds it taken and is refused, told who holds it. The launcher, while
it waits, and every worker process refresh the heartbeat (keep_lease.py), and the
lease is released when the job ends: by the job's commit step (so a launch that does
not wait, a Dataflow Flex Template, releases too) and by the launcher, success or
failure. A lease last written more than STALE_AFTER_SECONDS ago belongs to a run that
died, by the storage's own clock (the file's mtime, the object's `updated`), not by the
heartbeat its holder stamped with its host's clock; so does one held by a process of
this boot and pid namespace that no longer exists (a killed launcher): --resume or
--overwrite take it over (logged); a plain launch does not.

The commit seals the lease before it lists the output (seal): from then on a worker of
the same run, a cancelled attempt that a failover left running, fails check_held
too, so that no unit lands after the commit looked (docs/output.md, the manifest).
"""
import contextlib
import datetime
import json
import logging
import os
import socket
from typing import Iterator, Optional

from transforms.output import lease_store

LEASE_FILE = '_lease.json'
HEARTBEAT_SECONDS = 30
STALE_AFTER_SECONDS = 600  # 10 minutes since the lease was last written (by the storage's clock): its holder is dead


class Held(Exception):
  """The output is leased by another run; the message names it."""


class Lost(RuntimeError):
  """A worker's run no longer holds the output's lease (released, or taken over): it must not write there."""


def path_of(output: str) -> str:
  return output.rstrip('/') + '/' + LEASE_FILE


def _now() -> datetime.datetime:
  return datetime.datetime.now(datetime.timezone.utc)


def _stamp(when: datetime.datetime) -> str:
  return when.strftime(lease_store.STAMP)


def age_seconds(record: dict) -> float:
  beat = datetime.datetime.strptime(record['heartbeat'], lease_store.STAMP)
  return (_now() - beat.replace(tzinfo=datetime.timezone.utc)).total_seconds()


def _machine() -> str:
  """This kernel's boot id and pid namespace: the pid of a holder with the same one is a pid we can see (two
  containers may share a hostname but never both); '' where /proc does not tell."""
  try:
    with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as f:
      boot = f.read().strip()
    return f'{boot}/{os.readlink("/proc/self/ns/pid")}'
  except OSError:
    return ''


def new_record(run_id: str) -> dict:
  now = _stamp(_now())
  return {'run_id': run_id, 'host': socket.gethostname(), 'pid': os.getpid(), 'started': now, 'heartbeat': now,
          'machine': _machine()}


def _died_here(record: dict) -> bool:
  """A holder in this pid namespace of this boot whose process is gone (a killed launcher): no need to wait for its
  heartbeat to age. Another container with the same hostname is not here: its pids are not ours to look up."""
  here = _machine()
  if (record.get('host') != socket.gethostname() or not here or record.get('machine') != here
      or not isinstance(record.get('pid'), int)):
    return False
  try:
    os.kill(record['pid'], 0)
  except ProcessLookupError:
    return True
  except OSError:  # exists, someone else's
    return False
  return False


def describe(record: dict) -> str:
  return (f'run {record.get("run_id")} on host {record.get("host")} (pid {record.get("pid")}), started '
          f'{record.get("started")}, last heartbeat {record.get("heartbeat")} ({age_seconds(record):.0f} s ago)')


def acquire(output: str, run_id: str, take_over_stale: bool) -> None:
  """Takes the output's lease for run_id, or raises Held naming its holder."""
  path, backend = path_of(output), lease_store.backend(output)
  data = json.dumps(new_record(run_id), sort_keys=True)
  for _ in range(5):  # a holder may release or a lease be taken over between the steps
    if backend.create(path, data) is not None:
      return
    current = backend.read(path)
    if current is None:
      continue
    holder, token = current
    updated = backend.updated(path, token)
    if updated is None:
      continue  # changed since it was read
    stale = (_now() - updated).total_seconds() > STALE_AFTER_SECONDS or _died_here(holder)
    if not stale or not take_over_stale:
      minutes = STALE_AFTER_SECONDS // 60
      hint = ('it has died or not sent a heartbeat for over ' if stale else 'it may still be running; once its '
              'heartbeat is older than ') + f'{minutes} minutes, --resume or --overwrite take its lease over'
      raise Held(f'--output {output} is in use by {describe(holder)}: {hint}')
    if backend.take_over(path, data, token) is not None:
      logging.warning('took over the lease on %s from %s', output, describe(holder))
      return
  raise Held(f'--output {output}: could not take its lease ({path}), other launches keep changing it')


def _held(output: str, run_id: str):
  """(path, backend, record, token) of the lease if run_id holds it, else None."""
  path, backend = path_of(output), lease_store.backend(output)
  current = backend.read(path)
  if current is None or current[0].get('run_id') != run_id:
    return None
  return (path, backend) + tuple(current)


def holder(output: str) -> Optional[dict]:
  """The lease's record (run_id, host, pid, heartbeat), or None if no run holds the output."""
  current = lease_store.backend(output).read(path_of(output))
  return None if current is None else current[0]


def check_held(output: str, run_id: str, what: str) -> None:
  """Raises Lost unless run_id holds the lease, unsealed (seal). Workers call it before they
  commit: a job that was stopped or whose launcher died (its lease released, or taken over by a --resume) may
  run on for a while, on a cluster that has not ended it yet, and must not write into an output another run
  now owns; nor may an attempt of its own run that a failover cancelled, once the commit has begun."""
  record = holder(output)
  if record is None or record.get('run_id') != run_id:
    now = 'no run holds it (released)' if record is None else f'it is held by {describe(record)}'
    raise Lost(f'{what} not written: run {run_id} no longer holds the lease on {output}; {now}')
  if record.get('sealed'):
    raise Lost(f'{what} not written: the commit of run {run_id} began at {record["sealed"]} (a cancelled '
               'attempt, left running by a failover, must not land after it)')


def seal(output: str, run_id: str) -> None:
  """Marks the lease as the commit's, before it lists the output; raises Lost unless run_id holds it."""
  for _ in range(5):
    held = _held(output, run_id)
    if held is None:
      break
    path, backend, record, token = held
    if record.get('sealed'):
      return  # a retried commit
    if backend.refresh(path, json.dumps(dict(record, sealed=_stamp(_now())), sort_keys=True), token) is not None:
      return
  check_held(output, run_id, 'the commit')  # not held: raises Lost, naming the holder
  raise Lost(f'the commit could not seal the lease on {output}: it keeps changing')


def release(output: str, run_id: str) -> bool:
  """Drops the lease if run_id holds it (the commit step and the launcher both call this); True if it did."""
  held = _held(output, run_id)
  return held is not None and held[1].delete(held[0], held[3])


@contextlib.contextmanager
def retaken(output: str, run_id: str) -> Iterator[bool]:
  """For a run's last writes after its job released the lease (the launcher's completed summary.json, the
  report): inside, True when run_id holds the lease (taken again, sealed, or still held), False when another run took
  the output meanwhile, which the caller must then leave alone; released after if it was taken again."""
  record = holder(output)
  if record is not None and record.get('run_id') == run_id:
    yield True
    return
  try:
    acquire(output, run_id, take_over_stale=False)
    seal(output, run_id)  # taken again by the same run id: a cancelled attempt's worker must not pass for it
  except Held as e:
    logging.warning('the output was not written again: %s', e)
    yield False
    return
  try:
    yield True
  finally:
    release(output, run_id)


def beat(output: str, run_id: str, fresh_seconds: float = 0) -> bool:
  """Refreshes the heartbeat if run_id still holds the lease; False if it does not (released or taken).

  Many beaters (the launcher, every worker process) share one lease: a heartbeat younger than fresh_seconds is
  left as it is, and a refresh another beater won in between is as good as one's own."""
  for _ in range(3):
    held = _held(output, run_id)
    if held is None:
      return False
    path, backend, record, token = held
    if age_seconds(record) < fresh_seconds:
      return True
    data = json.dumps(dict(record, heartbeat=_stamp(_now())), sort_keys=True)
    if backend.refresh(path, data, token) is not None:
      return True
    fresh_seconds = max(fresh_seconds, HEARTBEAT_SECONDS)  # lost a race: another's fresh beat will do
  return _held(output, run_id) is not None
