#!/usr/bin/env bash
# The command of Beam's PROCESS environment (--environment_type=PROCESS
# --environment_option=process_command=THIS_FILE, as `flink.sh flags` prints it): a TaskManager that runs the
# job's bundles starts it once per SDK worker, with --id and --provision_endpoint. It runs sdk_worker.py, beside
# it, with the job's Python; the worker serves that TaskManager's bundles only.
#
# From the environment flink.sh gives each TaskManager:
#   SDK_WORKER_PYTHON  the Python that has the job installed [python3]
#   SDK_WORKER_LOG     the file the worker logs to: warnings, errors, the job's progress lines [stderr]
#   TASKMANAGER_ID     the TaskManager's name, logged with the worker's pid [unknown]
set -euo pipefail
if [[ -n "${SDK_WORKER_LOG:-}" ]]; then exec 2>> "$SDK_WORKER_LOG"; fi
echo "$(date '+%F %T') ${TASKMANAGER_ID:-unknown}: SDK worker pid $$: $*" >&2
exec "${SDK_WORKER_PYTHON:-python3}" "$(dirname "$0")/sdk_worker.py" "$@"
