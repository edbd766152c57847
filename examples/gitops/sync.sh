#!/usr/bin/env bash
# Syncs a directory of WorkerPool files to Consul, as a GitOps pipeline does.
#
#   sync.sh plan DIR    check the files, then print what `apply` would change (for reviews)
#   sync.sh apply DIR   check the files, then write them and delete the pools whose files
#                       were removed (overrides are never deleted)
#
# Needs `steward` on PATH and the Consul settings in the environment (CONSUL_HTTP_ADDR,
# CONSUL_HTTP_TOKEN, CONSUL_CACERT and so on). Exits with steward's status: 0 when done,
# 1 when Consul rejected a write or failed, 2 when a file is invalid. An invalid file stops the sync
# before anything is written.
set -euo pipefail

usage="usage: sync.sh plan|apply DIR"
if [[ $# -ne 2 ]]; then
  echo "sync.sh: expected a mode and a directory; $usage" >&2
  exit 2
fi
mode=$1
dir=$2

case "$mode" in
  plan | apply) ;;
  *)
    echo "sync.sh: invalid mode '$mode': expected plan or apply; $usage" >&2
    exit 2
    ;;
esac

# Offline checks first: they need no Consul access, so a review job can run them alone.
steward validate -f "$dir"

if [[ "$mode" == plan ]]; then
  steward apply -f "$dir" --prune --dry-run
else
  steward apply -f "$dir" --prune
fi
