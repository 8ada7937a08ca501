#!/usr/bin/env bash
# The command of Beam's PROCESS environment (--environment_type=PROCESS
# --environment_option=process_command=THIS_FILE, as `flink.sh flags` prints it): a TaskManager that runs the
# job's bundles starts it once per SDK worker, with --id and --provision_endpoint. The TaskManager's worker pool
# forks the worker (worker_pool.py, beside it), or without a pool sdk_worker.py runs with the job's Python; the
# worker serves that TaskManager's bundles only.
#
# From the environment flink.sh gives each TaskManager:
#   SDK_WORKER_PYTHON  the Python that has the job installed [python3]
#   SDK_WORKER_LOG     the file the worker logs to: warnings, errors, the job's progress lines [stderr]
#   TASKMANAGER_ID     the TaskManager's name, logged with the worker's pid [unknown]
#   SDK_WORKER_POOL    the socket of the TaskManager's worker pool [none: each worker imports everything itself]
set -euo pipefail
if [[ -n "${SDK_WORKER_LOG:-}" ]]; then exec 2>> "$SDK_WORKER_LOG"; fi
if [[ -n "${SDK_WORKER_POOL:-}" ]]; then
  exec "${SDK_WORKER_PYTHON:-python3}" -S "$(dirname "$0")/worker_pool.py" start "$SDK_WORKER_POOL" "$@"
fi
exec "${SDK_WORKER_PYTHON:-python3}" "$(dirname "$0")/sdk_worker.py" "$@"
