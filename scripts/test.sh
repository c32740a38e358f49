#!/usr/bin/env bash
# The whole test suite: `ruff check .`, then pytest (arguments are passed on to pytest).
# Needs .venv from scripts/setup.sh. Fails when no test ran (none collected, or all skipped).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VOS_VENV:-$REPO/.venv}"
cd "$REPO"
[[ -x "$VENV/bin/pytest" ]] || { echo "test.sh: $VENV/bin/pytest missing: run scripts/setup.sh" >&2; exit 1; }

export PATH="$VENV/bin:$PATH"
# Camera-sized images through Fast DDS without shared-memory segments left behind by killed tests.
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
# A domain of its own per run, so parallel runs on one host do not see each other's topics.
# 1-101 are the domain ids whose ports are safe on Linux.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 101 + 1))}"
# get_package_share_directory("vos_ros") finds launch/ and config/ through the venv's ament index.
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"

SECONDS=0
echo "==> ruff check ."
"$VENV/bin/ruff" check .

echo "==> pytest (ROS_DOMAIN_ID=$ROS_DOMAIN_ID)"
REPORT="$(mktemp -t vos_ros_pytest.XXXXXX.xml)"
trap 'rm -f "$REPORT"' EXIT
status=0
"$VENV/bin/pytest" --junitxml="$REPORT" "$@" || status=$?

ran="$("$VENV/bin/python" - "$REPORT" <<'PY'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
print(sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites))
PY
)" || ran=0
echo "==> ${ran} test(s) ran in ${SECONDS}s, pytest exit status ${status}"
if [[ "$status" == 0 && "$ran" == 0 ]]; then
  echo "test.sh: no test ran" >&2
  exit 1
fi
exit "$status"
