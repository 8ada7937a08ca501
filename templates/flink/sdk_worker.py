"""One Python SDK worker of Beam's PROCESS environment, as Beam's container boot program starts one.

The TaskManager that runs the job's bundles starts `sdk_worker.sh --id=ID --provision_endpoint=HOST:PORT`
(the `process_command` of `--environment_type=PROCESS`), which has the TaskManager's worker pool fork one
(worker_pool.py: this file's main() in a Python that imported everything already) or runs this file. It asks
the TaskManager's provision service for the job's options and its control and logging endpoints, then runs
Beam's own SDK harness entry point (`sdk_worker_main`) on them: the worker serves that TaskManager's bundles
and no other's, as a worker pool on each node would. It needs no staged artifacts: the job is installed in
the Python that runs it (on a cluster, the TaskManager's host or image).
"""
import argparse
import logging
import os
import sys
import threading
import time

from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
from apache_beam.runners.worker import sdk_worker_main
from apache_beam.runners.worker.channel_factory import GRPCChannelFactory
from google.protobuf import json_format, text_format


def provision(worker_id: str, endpoint: str) -> dict:
  """The environment sdk_worker_main reads, from the provision service, as Beam's boot program sets it."""
  stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(GRPCChannelFactory.insecure_channel(endpoint))
  info = stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                               metadata=[('worker_id', worker_id)], timeout=60).info
  env = {'WORKER_ID': worker_id, 'PIPELINE_OPTIONS': json_format.MessageToJson(info.pipeline_options),
         'CONTROL_API_SERVICE_DESCRIPTOR': text_format.MessageToString(info.control_endpoint),
         'RUNNER_CAPABILITIES': ' '.join(info.runner_capabilities)}
  if info.logging_endpoint.url:
    env['LOGGING_API_SERVICE_DESCRIPTOR'] = text_format.MessageToString(info.logging_endpoint)
  if info.status_endpoint.url:
    env['STATUS_API_SERVICE_DESCRIPTOR'] = text_format.MessageToString(info.status_endpoint)
  return env


def stop_when_orphaned(parent: int) -> None:
  """A TaskManager killed outright (SIGKILL, a lost node) cannot stop its workers: they stop themselves."""
  while os.getppid() == parent:
    time.sleep(1)
  os._exit(1)  # pylint: disable=protected-access


def main(argv) -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--id', required=True)
  parser.add_argument('--provision_endpoint', required=True)
  args, _ = parser.parse_known_args(argv)  # older runners also pass the other endpoints; provision has them
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')  # the worker's log
  logging.getLogger('apache_beam').setLevel(logging.WARNING)
  sys.stderr.write(f'{time.strftime("%Y-%m-%d %H:%M:%S")} {os.environ.get("TASKMANAGER_ID", "unknown")}: '
                   f'SDK worker pid {os.getpid()}: {" ".join(argv)}\n')  # which node a worker served
  threading.Thread(target=stop_when_orphaned, args=(os.getppid(),), name='orphaned', daemon=True).start()
  os.environ.update(provision(args.id, args.provision_endpoint))
  sdk_worker_main.main([])


if __name__ == '__main__':
  main(sys.argv[1:])
