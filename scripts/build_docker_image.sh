#!/usr/bin/env bash
# Build the project's image without a registry or a network at build time:
#   1. the base image qa-system-base:bookworm from Debian packages (scripts/docker_base_image.sh),
#   2. a wheelhouse in docker/wheels (git-ignored): CPU torch 2.13.0 and every dependency of
#      .[postgres,service], as wheels for the base image's Python (downloaded by this machine's
#      pip, which finds the CPU torch),
#   3. docker build --network none from docker/Dockerfile with OFFLINE_WHEELS=1.
# Steps 1 and 2 are skipped when done (--force redoes them). docker/README.md has the times.
#
#   scripts/build_docker_image.sh [--force]
#
# Environment: QA_IMAGE (default qa-system:local), QA_BASE_IMAGE (default qa-system-base:bookworm),
# PYTHON (the Python that downloads the wheels; default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

image="${QA_IMAGE:-qa-system:local}"
export QA_BASE_IMAGE="${QA_BASE_IMAGE:-qa-system-base:bookworm}"
force=()
for arg in "$@"; do
  case "$arg" in
    --force) force=(--force) ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
# Python 3.11 or later (tomllib reads pyproject.toml); the wheels are picked for the base's Python
if ! "$python" -c 'import tomllib' 2>/dev/null; then
  echo "$python has no tomllib: the wheelhouse needs Python 3.11 or later (set PYTHON=...)" >&2
  exit 1
fi

scripts/docker_base_image.sh "${force[@]}"

wheels=docker/wheels
stamp="$wheels/.complete"
if [ ${#force[@]} -gt 0 ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
    || [ docker/requirements.py -nt "$stamp" ]; then
  start=$SECONDS
  # the base's Python decides what fits (bookworm's 3.11.2 is older than some wheels ask for)
  base_python="$(docker run --rm --network none "$QA_BASE_IMAGE" python3 -c 'import platform; print(platform.python_version())')"
  echo "wheelhouse for Python $base_python -> $wheels"
  rm -f "$stamp" "$wheels"/*.whl
  # the project's dependencies with the postgres and service extras, as binary wheels only (the
  # image installs the project itself from the sources in the build context)
  listed="$("$python" docker/requirements.py pyproject.toml postgres service)"
  mapfile -t requirements <<<"$listed"
  "$python" -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version "$base_python" \
    -d "$wheels" torch==2.13.0 "${requirements[@]}" "setuptools>=68" wheel
  touch "$stamp"
  echo "wheelhouse: $(find "$wheels" -name '*.whl' | wc -l) wheels, $(du -sm "$wheels" | cut -f1) MB in $((SECONDS - start)) s"
else
  echo "wheelhouse $wheels is complete; --force rebuilds it"
fi

start=$SECONDS
echo "docker build --network none -> $image"
docker build --network none --force-rm --build-arg BASE_IMAGE="$QA_BASE_IMAGE" --build-arg OFFLINE_WHEELS=1 \
  -f docker/Dockerfile -t "$image" .
echo "built $image in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
