#!/usr/bin/env bash
# Wait until Argo Rollouts run the revision just applied, or fail (make deploy-wait).
#
#   bash deploy/kubernetes/rollout-wait.sh NAMESPACE TIMEOUT_SECONDS ROLLOUT...
#
# Right after `kubectl apply` a Rollout's status still describes the previous revision, which
# reads Healthy, so waiting for `phase=Healthy` alone can return before the canary has begun.
# A Rollout is done here only when the controller has observed the applied spec
# (status.observedGeneration == metadata.generation) and reports it Healthy with the new
# revision as the stable one (status.stableRS == status.currentPodHash), the checks
# `kubectl argo rollouts status` makes. Degraded (an analysis failed, the rollout aborted and
# traffic went back to the stable pods) fails at once; so does the deadline.
# ROLLOUT_WAIT_INTERVAL sets the seconds between polls (default 10).
set -euo pipefail

namespace=${1:?usage: rollout-wait.sh NAMESPACE TIMEOUT_SECONDS ROLLOUT...}
timeout=${2:?usage: rollout-wait.sh NAMESPACE TIMEOUT_SECONDS ROLLOUT...}
shift 2
[[ $# -gt 0 ]] || { echo "rollout-wait.sh: name at least one Rollout" >&2; exit 2; }
interval=${ROLLOUT_WAIT_INTERVAL:-10}
deadline=$((SECONDS + timeout))
fields='{.metadata.generation}|{.status.observedGeneration}|{.status.phase}|{.status.currentPodHash}|{.status.stableRS}|{.status.message}'

for rollout in "$@"; do
    last=""
    while true; do
        # A failed read (API server hiccup) is retried until the deadline, not fatal.
        state=$(kubectl --namespace "$namespace" get "rollout/$rollout" --output "jsonpath=$fields") \
            || state="|||||kubectl get failed"
        IFS='|' read -r generation observed phase current stable message <<< "$state"
        if [[ "$state" != "$last" ]]; then
            echo "rollout/$rollout: generation ${generation:-?} observed ${observed:-?}," \
                "phase ${phase:-?}, revision ${current:-?} (stable ${stable:-?}) ${message}"
            last=$state
        fi
        if [[ -n "$generation" && "$observed" == "$generation" ]]; then
            if [[ "$phase" == Degraded ]]; then
                echo "rollout/$rollout is Degraded: the canary was aborted and rolled back" >&2
                exit 1
            fi
            if [[ "$phase" == Healthy && -n "$current" && "$current" == "$stable" ]]; then
                echo "rollout/$rollout: revision $current is stable and Healthy"
                break
            fi
        fi
        if ((SECONDS >= deadline)); then
            echo "rollout/$rollout: not done after ${timeout}s (phase ${phase:-?})" >&2
            exit 1
        fi
        sleep "$interval"
    done
done
