#!/usr/bin/env bash
# A standalone Flink cluster on this machine for the job: a JobManager, FLINK_TASKMANAGERS TaskManagers (each
# starting its own Python SDK workers, Beam's PROCESS environment, through sdk_worker.sh, forked by a worker pool
# beside it) and Beam's Flink job server, standing, so that a job starts no JVM of its own. See README.md beside
# this file.
#
#   flink.sh install         fetch Flink and the job server jar into the cache (idempotent; reruns are fast)
#   flink.sh start           install, then start the JobManager, the TaskManagers and the job server; wait for them
#   flink.sh flags           print the pipeline options that run the job on this cluster through the job server
#   flink.sh jar-flags       the same, but each job starts its own job server from the jar (no standing one)
#   flink.sh taskmanager I   start TaskManager I (1..FLINK_TASKMANAGERS) again, after it died or was killed
#   flink.sh status          print the cluster's overview from its REST API
#   flink.sh stop            stop what start started
#
# Settings (environment variables, defaults in brackets):
#   PYTHON               the Python that has the job installed; the SDK workers run it [python3]
#   FLINK_TASKMANAGERS   TaskManagers, as N nodes would have them [1]
#   FLINK_SLOTS          task slots per TaskManager, one per core it may use [cores / FLINK_TASKMANAGERS, at least 1]
#   FLINK_WORKER_POOL    1: a worker pool per TaskManager forks its SDK workers (worker_pool.py); 0: each worker
#                        starts from nothing, 3 to 4 s of every job's start-up [1]
#   FLINK_VERSION        Flink distribution, from PyPI's apache-flink packages [1.19.3]
#   JOB_SERVER_JAR       use this job server jar instead of fetching or building one
#   JOB_SERVER_BUILD_BEAM  Beam version to build the job server from when the published jar is missing [2.62.0]
#   FLINK_CACHE_DIR      downloads and builds [~/.cache/beam-image-inference/flink]
#   FLINK_RUN_DIR        configuration, logs and pid files of the running cluster [$FLINK_CACHE_DIR/run]
#   FLINK_REST_PORT [8081], FLINK_RPC_PORT [6123], FLINK_JOB_PORT [8099], FLINK_ARTIFACT_PORT [8098],
#   FLINK_EXPANSION_PORT [8097]: the JobManager's REST and RPC ports, the job server's job, artifact and
#   expansion service ports
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
JOB_PORT="${FLINK_JOB_PORT:-8099}"
ARTIFACT_PORT="${FLINK_ARTIFACT_PORT:-8098}"
EXPANSION_PORT="${FLINK_EXPANSION_PORT:-8097}"
TASKMANAGERS="${FLINK_TASKMANAGERS:-1}"
WORKER_POOL="${FLINK_WORKER_POOL:-1}"
SLOTS="${FLINK_SLOTS:-$(( $(nproc) / TASKMANAGERS > 0 ? $(nproc) / TASKMANAGERS : 1 ))}"
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

install_runner_lib() {  # install_runner_lib JOB-SERVER-JAR: the JobManager's and TaskManagers' lib folder, $RUN_DIR/lib
  # Beam's Flink runner on the TaskManagers' own class path, not only in each job's class loader: Flink drops a
  # job's class loader whenever none of its tasks runs on a TaskManager, which in a batch plan happens between
  # stages, and Beam's runner then stops that job's SDK workers at once, so each stage started new ones (about
  # 5 s of Python start-up and model loading, four times per job). Loaded by the TaskManager (with the
  # parent-first pattern org.apache.beam. in conf/config.yaml), the runner keeps them for
  # --environment_cache_millis. The classes: the job server jar's, without Flink's own (the distribution's serve).
  local classes="$CACHE/jars/runner-classes-$(basename "$1")"
  if [[ ! -f "$classes" ]]; then
    "$PYTHON" - "$1" "$classes.tmp" <<'EOF'
import re, sys, zipfile
skip = re.compile(r'^(org/apache/flink/|META-INF/[^/]+\.(SF|DSA|RSA)$)')
with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as dst:
  for item in src.infolist():
    if not skip.match(item.filename):
      dst.writestr(item, src.read(item))
EOF
    mv "$classes.tmp" "$classes"
  fi
  rm -rf "$RUN_DIR/lib" && mkdir -p "$RUN_DIR/lib"
  ln -s "$FLINK_HOME"/lib/*.jar "$classes" $(nothing_to_stage "$1") "$RUN_DIR/lib/"
}

nothing_to_stage() {  # nothing_to_stage JOB-SERVER-JAR: prints a jar of jobserver/NothingToStage.java, or nothing
  # without a Java compiler (jobs then ship the job server jar, as Beam does by default).
  local jar="$CACHE/jars/nothing-to-stage-$(basename "$1")" build="$CACHE/jars/nothing-to-stage.build"
  if [[ ! -f "$jar" ]]; then
    if ! command -v javac > /dev/null; then
      log "no javac: each job ships the job server jar (157 MB) to the cluster; install a JDK to avoid it"
      return
    fi
    rm -rf "$build" && mkdir -p "$build"
    javac --release 11 -nowarn -cp "$1" -d "$build" "$HERE/jobserver/NothingToStage.java" >&2
    "$PYTHON" - "$build" "$jar.tmp" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[2], 'w') as jar:
  for folder, _, names in os.walk(sys.argv[1]):
    for name in names:
      path = os.path.join(folder, name)
      jar.write(path, os.path.relpath(path, sys.argv[1]))
EOF
    mv "$jar.tmp" "$jar" && rm -rf "$build"
  fi
  echo "$jar"
}

pipeline_flags() {  # pipeline_flags JOB-SERVER-FLAG: the job's options for this cluster
  # One SDK worker per slot on every TaskManager (Beam's default is one per TaskManager), each started by the
  # TaskManager that runs the bundle (PROCESS environment): a TaskManager's bundles go to its own workers.
  # With the standing job server (launched with NothingToStage on its class path), each job ships no jar.
  local ship=""
  if [[ "$1" == --job_endpoint=* && -n "$(ls "$CACHE"/jars/nothing-to-stage-*.jar 2>/dev/null)" ]]; then
    ship=" --pipeline_resources_detector_factory_class=beamimageinference.NothingToStage"
  fi
  echo "--runner=FlinkRunner --flink_master=localhost:$REST_PORT --flink_version=$FLINK_MINOR $1$ship" \
       "--parallelism=$((TASKMANAGERS * SLOTS)) --sdk_worker_parallelism=$SLOTS --environment_cache_millis=10000" \
       "--environment_type=PROCESS --environment_option=process_command=$HERE/sdk_worker.sh"
}

flink_env() {
  export JAVA_HOME FLINK_CONF_DIR="$RUN_DIR/conf" FLINK_LOG_DIR="$RUN_DIR/log" FLINK_PID_DIR="$RUN_DIR"
  JAVA_HOME="$(java_home)"
}

wait_until() {  # wait_until SECONDS DESCRIPTION PYTHON-EXPRESSION
  local deadline=$((SECONDS + $1))
  until "$PYTHON" -c "$3" 2>/dev/null; do
    ((SECONDS < deadline)) || die "$2 not ready after $1 s; logs in $RUN_DIR/log"
    sleep 0.5
  done
}

alive() {  # alive PID-FILE: whether a process listed in it runs (a killed one not yet reaped does not)
  local p state
  [[ -f "$1" ]] || return 1
  while read -r p; do
    state="$(ps -o stat= -p "$p" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z* ]] && return 0
  done < "$1"
  return 1
}

start_taskmanager() {  # start_taskmanager I: TaskManager I, its slots, its worker pool and its workers' environment
  local i="$1" python pool=()
  ((i >= 1 && i <= TASKMANAGERS)) || die "no TaskManager $i: FLINK_TASKMANAGERS is $TASKMANAGERS"
  alive "$RUN_DIR/flink-tm-$i-taskexecutor.pid" && die "TaskManager $i already runs"
  rm -f "$RUN_DIR/flink-tm-$i-taskexecutor.pid"
  python="$(command -v "$PYTHON")"
  # A node of its own: pid file and log named tm-I, its resource id in Flink's REST API, and its SDK workers
  # (children of its JVM, sdk_worker.sh, or forks of its pool) told which node they serve and where to log.
  local node=(SDK_WORKER_PYTHON="$python" TASKMANAGER_ID="tm-$i" SDK_WORKER_LOG="$FLINK_LOG_DIR/sdk-workers-tm-$i.log"
              PATH="$(dirname "$python"):$PATH")
  if [[ "$WORKER_POOL" == 1 ]]; then
    pool=(SDK_WORKER_POOL="$RUN_DIR/sdk-pool-tm-$i.sock")
    if ! alive "$RUN_DIR/sdk-pool-tm-$i.pid"; then
      env "${node[@]}" nohup "$python" "$HERE/worker_pool.py" serve "$RUN_DIR/sdk-pool-tm-$i.sock" \
        >> "$FLINK_LOG_DIR/sdk-workers-tm-$i.log" 2>&1 < /dev/null &
      echo $! > "$RUN_DIR/sdk-pool-tm-$i.pid"
    fi
  fi
  env FLINK_IDENT_STRING="tm-$i" "${node[@]}" "${pool[@]}" FLINK_LIB_DIR="$RUN_DIR/lib" \
    "$FLINK_HOME/bin/taskmanager.sh" start -D "taskmanager.resource-id=tm-$i" -D "rest.port=$REST_PORT" \
    -D "jobmanager.rpc.port=$RPC_PORT" -D "taskmanager.numberOfTaskSlots=$SLOTS" >&2
}

start() {
  install_flink
  local jar i
  jar="$(install_job_server)"
  flink_env
  mkdir -p "$FLINK_CONF_DIR" "$FLINK_LOG_DIR" "$RUN_DIR/artifacts"
  cp "$FLINK_HOME"/conf/log4j*.properties "$FLINK_CONF_DIR/"
  cp "$HERE/conf/config.yaml" "$FLINK_CONF_DIR/config.yaml"
  install_runner_lib "$jar"
  FLINK_LIB_DIR="$RUN_DIR/lib" "$FLINK_HOME/bin/jobmanager.sh" start -D "rest.port=$REST_PORT" -D "jobmanager.rpc.port=$RPC_PORT" \
    -D "parallelism.default=$((TASKMANAGERS * SLOTS))" >&2
  for ((i = 1; i <= TASKMANAGERS; i++)); do start_taskmanager "$i"; done
  # Beam's Flink job server, once for every job: it translates each job and submits it to the JobManager.
  # NothingToStage on its class path: a job whose options name it (flink.sh flags) ships no jar; the cluster
  # has the runner's classes in its lib folder (install_runner_lib) for the JobManager and the TaskManagers.
  local nothing classpath="$jar"
  nothing="$(nothing_to_stage "$jar")"
  classpath+="${nothing:+:$nothing}"
  nohup "$JAVA_HOME/bin/java" -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd\ HH:mm:ss,SSS -cp "$classpath" \
    org.apache.beam.runners.flink.FlinkJobServerDriver --flink-master="localhost:$REST_PORT" --job-port="$JOB_PORT" \
    --artifact-port="$ARTIFACT_PORT" --expansion-port="$EXPANSION_PORT" --artifacts-dir="$RUN_DIR/artifacts" \
    --clean-artifacts-per-job > "$FLINK_LOG_DIR/job-server.log" 2>&1 &
  echo $! > "$RUN_DIR/job-server.pid"
  wait_until 120 "Flink REST API on port $REST_PORT with $TASKMANAGERS TaskManagers" "import json, urllib.request as u
o = json.load(u.urlopen('http://localhost:$REST_PORT/overview', timeout=2))
assert o['taskmanagers'] >= $TASKMANAGERS and o['slots-available'] >= $((TASKMANAGERS * SLOTS))"
  wait_until 120 "job server on port $JOB_PORT" \
    "import socket; socket.create_connection(('localhost', $JOB_PORT), timeout=2).close()"
  if [[ "$WORKER_POOL" == 1 ]]; then
    wait_until 120 "worker pools" "import os; assert all(os.path.exists('$RUN_DIR/sdk-pool-tm-%d.sock' % i) for i in range(1, $TASKMANAGERS + 1))"
  fi
  log "Flink $FLINK_VERSION on localhost:$REST_PORT: $TASKMANAGERS TaskManager(s) of $SLOTS slots;" \
      "job server on localhost:$JOB_PORT"
  log "run the job with: $(pipeline_flags "--job_endpoint=localhost:$JOB_PORT")"
}

stop() {
  flink_env
  local f
  if [[ -f "$RUN_DIR/job-server.pid" ]]; then
    kill "$(cat "$RUN_DIR/job-server.pid")" 2>/dev/null || true
    rm -f "$RUN_DIR/job-server.pid"
  fi
  for f in "$RUN_DIR"/sdk-pool-tm-*.pid; do
    [[ -f "$f" ]] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  if [[ -x "$FLINK_HOME/bin/jobmanager.sh" ]]; then
    for f in "$RUN_DIR"/flink-tm-*-taskexecutor.pid; do
      [[ -f "$f" ]] || continue
      f="${f##*/flink-}"
      FLINK_IDENT_STRING="${f%-taskexecutor.pid}" "$FLINK_HOME/bin/taskmanager.sh" stop-all >&2 || true
    done
    "$FLINK_HOME/bin/jobmanager.sh" stop >&2 || true
  fi
}

case "${1:-}" in
  install) install_flink; install_job_server > /dev/null; log "Flink $FLINK_VERSION and job server ready in $CACHE" ;;
  start) start ;;
  flags) pipeline_flags "--job_endpoint=localhost:$JOB_PORT" ;;
  jar-flags) pipeline_flags "--flink_job_server_jar=$(install_job_server)" ;;
  taskmanager) flink_env; start_taskmanager "${2:?which TaskManager, 1 to $TASKMANAGERS}" ;;
  status) "$PYTHON" -c "import urllib.request as u; print(u.urlopen('http://localhost:$REST_PORT/overview').read().decode())" ;;
  stop) stop ;;
  *) sed -n '2,28p' "$0" >&2; exit 2 ;;
esac
