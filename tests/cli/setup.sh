# SPDX-License-Identifier: MIT
# What run.sh, knn.sh and knn_suite.sh share, sourced with their arguments (BRIGADE
# MYTASK_PLUGIN SCHEMA) once they have set `here`: the counters, a private temporary folder
# removed at exit, a limits cache inside it (never the home folder of whoever runs the tests),
# and expect().
bin=$1 plugin=$2 schema=$3
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME="$tmp/xdg"

. "$here/expect.sh"
