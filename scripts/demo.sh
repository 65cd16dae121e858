#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job, from a fresh Debian 12 machine, as root: install, build,
# then scripts/demo.py (a throwaway cluster and a private libvirtd, the
# example pool, raw and qcow2 volumes, their disk XML, teardown).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"
exec /usr/bin/python3 "$top/scripts/demo.py"
