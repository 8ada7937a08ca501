#!/usr/bin/env bash
# A standalone Flink cluster on this machine for the job: JobManager, TaskManager and the Beam Python SDK
# worker pool (the EXTERNAL environment), plus Beam's Flink job server jar. See README.md beside this file.
#
#   flink.sh install   fetch Flink and the job server jar into the cache (idempotent; reruns are fast)
#   flink.sh start     install, then start JobManager, TaskManager and worker pool; wait until they serve
#   flink.sh flags     print the pipeline options that run the job on this cluster
#   flink.sh status    print the cluster's overview from its REST API
#   flink.sh stop      stop what start started
#
# Settings (environment variables, defaults in brackets):
#   PYTHON               the Python that has the job installed; the worker pool runs it [python3]
#   FLINK_VERSION        Flink distribution, from PyPI's apache-flink packages [1.19.3]
#   JOB_SERVER_JAR       use this job server jar instead of fetching or building one
#   JOB_SERVER_BUILD_BEAM  Beam version to build the job server from when the published jar is missing [2.62.0]
#   FLINK_CACHE_DIR      downloads and builds [~/.cache/beam-image-inference/flink]
#   FLINK_RUN_DIR        configuration, logs and pid files of the running cluster [$FLINK_CACHE_DIR/run]
#   FLINK_REST_PORT [8081], FLINK_RPC_PORT [6123], WORKER_POOL_PORT [50000], FLINK_SLOTS [number of cores]
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
FLINK_VERSION="${FLINK_VERSION:-1.19.3}"
FLINK_MINOR="${FLINK_VERSION%.*}"
JOB_SERVER_BUILD_BEAM="${JOB_SERVER_BUILD_BEAM:-2.62.0}"
CACHE="${FLINK_CACHE_DIR:-$HOME/.cache/beam-image-inference/flink}"
RUN_DIR="${FLINK_RUN_DIR:-$CACHE/run}"
REST_PORT="${FLINK_REST_PORT:-8081}"
RPC_PORT="${FLINK_RPC_PORT:-6123}"
POOL_PORT="${WORKER_POOL_PORT:-50000}"
SLOTS="${FLINK_SLOTS:-$(nproc)}"
FLINK_HOME="$CACHE/flink-$FLINK_VERSION"

log() { echo "flink.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

java_home() {
  # Flink's scripts need JAVA_HOME (or java on PATH); Flink 1.19 runs on Java 11 and 17.
  if [[ -n "${JAVA_HOME:-}" ]]; then echo "$JAVA_HOME"; return; fi
  local java
  java="$(command -v java)" || die 'no java on PATH and JAVA_HOME unset: install a JDK 17'
  dirname "$(dirname "$(readlink -f "$java")")"
}

install_flink() {
  # PyPI's apache-flink wheel carries bin/ and conf/, apache-flink-libraries carries lib/, opt/ and
  # plugins/: together they are the Flink distribution. Downloaded, never installed, so their pins
  # cannot fight Beam's.
  [[ -x "$FLINK_HOME/bin/jobmanager.sh" ]] && return
  log "assembling Flink $FLINK_VERSION in $FLINK_HOME"
  mkdir -p "$CACHE/downloads"
  "$PYTHON" -m pip download -q --no-deps -d "$CACHE/downloads" \
    "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION" >&2
  rm -rf "$FLINK_HOME.tmp"
  "$PYTHON" - "$CACHE/downloads" "$FLINK_VERSION" "$FLINK_HOME.tmp" <<'EOF'
import glob, os, re, stat, sys, tarfile, zipfile
downloads, version, home = sys.argv[1:]
# Inside the wheel the tree sits under pyflink/, inside the libraries' sdist under <name>/deps/.
tree = re.compile(r'^(?:pyflink|[^/]+/deps)/((?:bin|conf|lib|opt|plugins)/.+)$')
for archive in glob.glob(os.path.join(downloads, f'apache[-_]flink*{version}*')):
  if archive.endswith('.whl'):
    with zipfile.ZipFile(archive) as z:
      members = [(m, z.read(m)) for m in z.namelist() if tree.match(m) and not m.endswith('/')]
  else:
    with tarfile.open(archive) as t:
      members = [(m.name, t.extractfile(m).read()) for m in t.getmembers() if m.isfile() and tree.match(m.name)]
  for name, data in members:
    path = os.path.join(home, tree.match(name).group(1))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(data)
    if path.endswith('.sh') or os.path.basename(path) == 'flink':
      os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
EOF
  [[ -x "$FLINK_HOME.tmp/bin/jobmanager.sh" && -n "$(ls "$FLINK_HOME.tmp"/lib/flink-dist-*.jar)" ]] \
    || die "the downloaded apache-flink packages hold no Flink distribution"
  mv "$FLINK_HOME.tmp" "$FLINK_HOME"
  rm -rf "$CACHE/downloads"  # 230 MB; pip's own cache keeps them for a rebuild
}

beam_version() {
  "$PYTHON" -c 'import apache_beam; print(apache_beam.__version__)'
}

install_job_server() {
  # Prints the job server jar. Prefers Beam's published jar at the SDK's own version; Maven Central
  # mirrors that lack it (this project's CI machines among them) get the same jar built from the Flink
  # runner artifact by jobserver/pom.xml, at JOB_SERVER_BUILD_BEAM.
  if [[ -n "${JOB_SERVER_JAR:-}" ]]; then
    [[ -f "$JOB_SERVER_JAR" ]] || die "JOB_SERVER_JAR not found: $JOB_SERVER_JAR"
    echo "$JOB_SERVER_JAR"; return
  fi
  local sdk published built chosen
  sdk="$(beam_version)"
  published="$CACHE/jars/beam-runners-flink-$FLINK_MINOR-job-server-$sdk.jar"
  built="$CACHE/jars/beam-runners-flink-$FLINK_MINOR-job-server-$JOB_SERVER_BUILD_BEAM.jar"
  chosen="$CACHE/jars/for-beam-$sdk-flink-$FLINK_MINOR"  # remembers the choice: no Maven call next time
  mkdir -p "$CACHE/jars" "$CACHE/logs"
  if [[ -f "$chosen" && -f "$(cat "$chosen")" ]]; then cat "$chosen"; return; fi
  if [[ -f "$published" ]]; then echo "$published" | tee "$chosen"; return; fi
  if mvn -B -q dependency:copy -Dmdep.overWriteIfNewer=true \
      "-Dartifact=org.apache.beam:beam-runners-flink-$FLINK_MINOR-job-server:$sdk:jar" \
      "-DoutputDirectory=$CACHE/jars" > "$CACHE/logs/fetch-job-server.log" 2>&1; then
    echo "$published" | tee "$chosen"; return
  fi
  if [[ ! -f "$built" ]]; then
    log "no published job server $sdk for Flink $FLINK_MINOR on Maven Central; building it from" \
        "beam-runners-flink-$FLINK_MINOR $JOB_SERVER_BUILD_BEAM"
    mvn -B -q -f "$HERE/jobserver/pom.xml" package "-Dbeam.version=$JOB_SERVER_BUILD_BEAM" \
      "-Dflink.minor=$FLINK_MINOR" "-Dbuild.dir=$CACHE/jobserver-build" > "$CACHE/logs/build-job-server.log" 2>&1 \
      || { tail -30 "$CACHE/logs/build-job-server.log" >&2; die "job server build failed"; }
    mv "$CACHE/jobserver-build/beam-runners-flink-$FLINK_MINOR-job-server-$JOB_SERVER_BUILD_BEAM.jar" "$built"
  fi
  echo "$built" | tee "$chosen"
}

pipeline_flags() {
  echo "--runner=FlinkRunner --flink_master=localhost:$REST_PORT --flink_version=$FLINK_MINOR" \
       "--flink_job_server_jar=$1 --parallelism=$SLOTS" \
       "--environment_type=EXTERNAL --environment_config=localhost:$POOL_PORT"
}

flink_env() {
  export JAVA_HOME FLINK_CONF_DIR="$RUN_DIR/conf" FLINK_LOG_DIR="$RUN_DIR/log" FLINK_PID_DIR="$RUN_DIR"
  JAVA_HOME="$(java_home)"
}

wait_until() {  # wait_until SECONDS DESCRIPTION PYTHON-EXPRESSION
  local deadline=$((SECONDS + $1))
  until "$PYTHON" -c "$3" 2>/dev/null; do
    ((SECONDS < deadline)) || die "$2 not ready after $1 s; logs in $RUN_DIR/log"
    sleep 1
  done
}

start() {
  install_flink
  local jar
  jar="$(install_job_server)"
  flink_env
  mkdir -p "$FLINK_CONF_DIR" "$FLINK_LOG_DIR"
  cp "$FLINK_HOME"/conf/log4j*.properties "$FLINK_CONF_DIR/"
  cp "$HERE/conf/config.yaml" "$FLINK_CONF_DIR/config.yaml"
  local props=(-D "rest.port=$REST_PORT" -D "jobmanager.rpc.port=$RPC_PORT"
               -D "taskmanager.numberOfTaskSlots=$SLOTS" -D "parallelism.default=$SLOTS")
  "$FLINK_HOME/bin/jobmanager.sh" start "${props[@]}" >&2
  "$FLINK_HOME/bin/taskmanager.sh" start "${props[@]}" >&2
  # The pool starts each SDK worker as `python -m ...`: the job's Python must come first on PATH.
  local python_bin
  python_bin="$(cd "$(dirname "$(command -v "$PYTHON")")" && pwd)"
  PATH="$python_bin:$PATH" nohup "$PYTHON" -m apache_beam.runners.worker.worker_pool_main \
    --service_port="$POOL_PORT" > "$FLINK_LOG_DIR/worker-pool.log" 2>&1 &
  echo $! > "$RUN_DIR/worker-pool.pid"
  wait_until 120 "Flink REST API on port $REST_PORT" "import json, urllib.request as u
o = json.load(u.urlopen('http://localhost:$REST_PORT/overview', timeout=2))
assert o['taskmanagers'] >= 1 and o['slots-available'] >= 1"
  wait_until 60 "worker pool on port $POOL_PORT" \
    "import socket; socket.create_connection(('localhost', $POOL_PORT), timeout=2).close()"
  log "Flink $FLINK_VERSION on localhost:$REST_PORT with $SLOTS slots, worker pool on localhost:$POOL_PORT"
  log "run the job with: $(pipeline_flags "$jar")"
}

stop() {
  flink_env
  if [[ -f "$RUN_DIR/worker-pool.pid" ]]; then
    kill "$(cat "$RUN_DIR/worker-pool.pid")" 2>/dev/null || true
    rm -f "$RUN_DIR/worker-pool.pid"
  fi
  if [[ -x "$FLINK_HOME/bin/jobmanager.sh" ]]; then
    "$FLINK_HOME/bin/taskmanager.sh" stop >&2 || true
    "$FLINK_HOME/bin/jobmanager.sh" stop >&2 || true
  fi
}

case "${1:-}" in
  install) install_flink; install_job_server > /dev/null; log "Flink $FLINK_VERSION and job server ready in $CACHE" ;;
  start) start ;;
  flags) pipeline_flags "$(install_job_server)" ;;
  status) "$PYTHON" -c "import urllib.request as u; print(u.urlopen('http://localhost:$REST_PORT/overview').read().decode())" ;;
  stop) stop ;;
  *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
