#!/usr/bin/env bash
# Fetches (once) the engines the Beam steps scale out on, outside the TFX
# environment: Flink's and Spark's own distributions from PyPI, and Beam's Flink and
# Spark job servers, of the Beam version the environment pins, from Maven. Every
# download is checked against tools/engines/SHA256SUMS. The result is cached beside
# the environment (tools/environment.sh), keyed on this recipe.
#
# Runs on the host (it needs Java and Maven there; the environment reaches the same
# Java through tools/environment.sh).
#
# Usage: tools/engines.sh ensure [flink|spark]...   fetch what is missing (default: both)
#        tools/engines.sh check                     exit 1 with one line if Java or Maven is missing
#        tools/engines.sh dir                       print the cache directory
#        tools/engines.sh pin                       rewrite SHA256SUMS from what is cached (maintainers)
set -euo pipefail

FLINK_VERSION=1.19.3        # Beam 2.70's Flink runner supports 1.17-1.20 (and 2.0)
FLINK_MINOR=${FLINK_VERSION%.*}
SPARK_VERSION=3.5.7         # Beam's Spark 3 runner is built for Scala 2.12: Spark 3.5.x
BEAM_VERSION=2.70.0         # must equal apache-beam in requirements.lock
# beam-runners-java-job-service is served here only up to this version: its sources
# are compiled against the BEAM_VERSION class path (see the poms).
JOB_SERVICE_SOURCES_VERSION=2.65.0
AUTO_VALUE_VERSION=1.11.0   # the annotation processor those sources need

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECIPE_DIR="$REPO/tools/engines"
SUMS="$RECIPE_DIR/SHA256SUMS"
CACHE_ROOT="${MNIST_TFX_ENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-tfx}"
KEY="$({ cat "$0" "$RECIPE_DIR"/*.pom.xml "$SUMS" "$RECIPE_DIR"/java/META-INF/services/* \
            "$RECIPE_DIR"/java/org/mnisttfx/beam/*.java 2>/dev/null || true; } \
      | sha256sum | cut -c1-12)"
ENGINES="$CACHE_ROOT/engines-$KEY"

log() { printf '[engines] %s\n' "$*" >&2; }

check() {
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    echo "Flink and Spark need a Java 17 JDK on this machine: install openjdk-17-jdk-headless (apt-get install openjdk-17-jdk-headless)" >&2
    return 1
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    echo "Flink and Spark need Maven to fetch Beam's job servers: install maven (apt-get install maven)" >&2
    return 1
  fi
}

# Checks FILE against its line in SHA256SUMS (by base name; `pin` writes them).
verify() {
  local file="$1" name want got
  name="$(basename "$file")"
  want="$(awk -v n="$name" '$2 == n {print $1}' "$SUMS")"
  [ -n "$want" ] || { log "no checksum pinned for $name in $SUMS"; return 1; }
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  [ "$got" = "$want" ] || { log "checksum mismatch for $name: got $got, pinned $want"; return 1; }
}

pip_download() {  # DIR ARGS...: one package from PyPI, no dependencies
  local dir="$1"; shift
  python3 -m pip download --quiet --no-deps --dest "$dir" "$@" >&2
}

# FLINK_HOME from the apache-flink wheel (bin/, conf/) and the
# apache-flink-libraries sdist (lib/ with flink-dist, opt/, plugins/).
build_flink() {
  local out="$1" dl="$1.download"
  mkdir -p "$dl"
  pip_download "$dl" --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 "apache-flink==$FLINK_VERSION"
  pip_download "$dl" --no-binary=:all: "apache-flink-libraries==$FLINK_VERSION"
  local f; for f in "$dl"/*; do verify "$f"; done
  python3 -m zipfile -e "$dl"/apache_flink-*.whl "$dl/wheel"
  tar -xzf "$dl"/apache-flink-libraries-*.tar.gz -C "$dl"
  local deps; deps="$(echo "$dl"/apache-flink-libraries-*/deps)"
  mkdir -p "$out/log"
  cp -r "$dl/wheel/pyflink/bin" "$dl/wheel/pyflink/conf" "$out/"
  cp -r "$deps/lib" "$deps/opt" "$deps/plugins" "$out/"
  cp "$deps/bin/bash-java-utils.jar" "$out/bin/"
  chmod +x "$out"/bin/*.sh "$out/bin/flink"
  rm -rf "$dl"
}

# SPARK_HOME from the pyspark sdist, whose deps/ is Spark's distribution.
build_spark() {
  local out="$1" dl="$1.download"
  mkdir -p "$dl"
  pip_download "$dl" --no-binary=:all: "pyspark==$SPARK_VERSION"
  verify "$dl"/pyspark-*.tar.gz
  tar -xzf "$dl"/pyspark-*.tar.gz -C "$dl"
  local deps; deps="$(echo "$dl"/pyspark-*/deps)"
  mkdir -p "$out/logs" "$out/work"
  cp -r "$deps/bin" "$deps/sbin" "$deps/jars" "$out/"
  [ -d "$deps/conf" ] && cp -r "$deps/conf" "$out/"
  chmod +x "$out"/bin/* "$out"/sbin/*
  rm -rf "$dl"
}

# A job server's class path: the runner's dependencies from Maven, plus
# beam-runners-java-job-service compiled from its published sources.
build_job_server() {
  local out="$1" runner="$2" dl="$1.download" jar
  mkdir -p "$dl/src" "$dl/classes" "$out/lib"
  mvn -B -q -Dstyle.color=never -f "$RECIPE_DIR/$runner-job-server.pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$out/lib" >&2
  mvn -B -q -Dstyle.color=never -f "$RECIPE_DIR/$runner-job-server.pom.xml" dependency:copy -DoutputDirectory="$dl" \
    -Dartifact="org.apache.beam:beam-runners-java-job-service:$JOB_SERVICE_SOURCES_VERSION:jar:sources" >&2
  mvn -B -q -Dstyle.color=never -f "$RECIPE_DIR/$runner-job-server.pom.xml" dependency:copy -DoutputDirectory="$dl" \
    -Dartifact="com.google.auto.value:auto-value:$AUTO_VALUE_VERSION" >&2
  for jar in "$out"/lib/*.jar "$dl"/*.jar; do verify "$jar"; done
  (cd "$dl/src" && python3 -m zipfile -e "$dl"/beam-runners-java-job-service-*-sources.jar .)
  find "$dl/src" -name '*.java' > "$dl/sources.txt"
  javac -nowarn --release 11 -processorpath "$dl/auto-value-$AUTO_VALUE_VERSION.jar" \
    -cp "$out/lib/*" -d "$dl/classes" "@$dl/sources.txt" 2>&1 | grep -v '^Note:' >&2 || true
  [ -f "$dl/classes/org/apache/beam/runners/jobsubmission/JobServerDriver.class" ] \
    || { log "compiling beam-runners-java-job-service failed"; return 1; }
  jar --create --file "$out/lib/beam-runners-java-job-service-$JOB_SERVICE_SOURCES_VERSION-on-$BEAM_VERSION.jar" \
    -C "$dl/classes" .
  # The project's own job-server option (tools/engines/java): stage no jars.
  mkdir -p "$dl/own"
  javac -nowarn --release 11 -cp "$out/lib/*" -d "$dl/own" \
    $(find "$RECIPE_DIR/java" -name '*.java') >&2
  jar --create --file "$out/lib/mnist-tfx-beam-options-on-$BEAM_VERSION.jar" \
    -C "$dl/own" . -C "$RECIPE_DIR/java" META-INF
  rm -rf "$dl"
}

# Builds $1 into a directory without a ready stamp, renames it into place, stamps it.
ensure_one() {
  local name="$1" dir="$ENGINES/$1" started=$SECONDS
  [ -f "$dir/.ready" ] && return 0
  log "fetching $name (once; cached in $ENGINES)"
  rm -rf "$dir.partial"
  case "$name" in
    flink-*) build_flink "$dir.partial" ;;
    spark-*) build_spark "$dir.partial" ;;
    beam-*-flink-*) build_job_server "$dir.partial" flink ;;
    beam-*-spark-*) build_job_server "$dir.partial" spark ;;
  esac
  rm -rf "$dir"; mv "$dir.partial" "$dir"; touch "$dir/.ready"
  log "$name ready in $((SECONDS - started)) s"
}

names_for() {
  case "$1" in
    flink) echo "flink-$FLINK_VERSION beam-$BEAM_VERSION-flink-$FLINK_MINOR-job-server" ;;
    spark) echo "spark-$SPARK_VERSION beam-$BEAM_VERSION-spark-3-job-server" ;;
    *) log "unknown engine $1: flink or spark"; return 2 ;;
  esac
}

ensure() {
  check
  local engines=("$@") engine name
  [ ${#engines[@]} -gt 0 ] || engines=(flink spark)
  mkdir -p "$ENGINES"
  exec 8>"$ENGINES/.lock"
  flock 8
  for engine in "${engines[@]}"; do
    for name in $(names_for "$engine"); do ensure_one "$name"; done
  done
  # Other recipes' caches go once unused for two days (another checkout may
  # still use one); this one stays.
  touch "$ENGINES/.used"
  local old; for old in "$CACHE_ROOT"/engines-*; do
    [ "$old" != "$ENGINES" ] && [ -z "$(find "$old" -maxdepth 1 -name .used -mtime -2)" ] \
      && rm -rf --one-file-system "$old"
  done
  exec 8>&-
}

# Writes SHA256SUMS from the downloads (kept by MNIST_TFX_ENGINES_KEEP=1) and the
# job servers' jars; for a maintainer changing a version, who reviews the diff.
pin() {
  local dir="$1"
  find "$dir" -name '*.whl' -o -name '*.tar.gz' -o -name '*.jar' \
    | grep -v -- '-on-' | xargs sha256sum | awk '{n=split($2, p, "/"); print $1 "  " p[n]}' \
    | sort -k2 -u > "$SUMS"
  log "wrote $(wc -l < "$SUMS") checksums to $SUMS"
}

case "${1:-}" in
  ensure) shift; ensure "$@" ;;
  check) check ;;
  dir) echo "$ENGINES" ;;
  pin) pin "${2:?directory holding the downloads and jars}" ;;
  *) echo "usage: $0 {ensure [flink|spark]...|check|dir|pin DIR}" >&2; exit 2 ;;
esac
