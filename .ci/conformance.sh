#!/usr/bin/env bash
# External conformance of rltrader against tracebook-conformance 0.6.0 (not run by CI by
# default; tests/conformance/test_tracebook.py is the quick version that is).
#
#   .ci/conformance.sh            # qualify both profiles + 200 x 500 campaign per profile
#
# Env: TRACES (200), EVENTS (500), SEED (1337), OUT (artifact dir, default
# .tracebook/conformance-<time>), PYTHON (python3). Needs the core built in place
# (python setup.py build_ext --inplace) or installed, and tracebook-conformance==0.6.0.
# Exit status: 0 when every run passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
traces="${TRACES:-200}"
events="${EVENTS:-500}"
seed="${SEED:-1337}"
out="${OUT:-.tracebook/conformance-$(date +%Y%m%d-%H%M%S)}"
profiles=(fifo-full-v1 fifo-partial-fill-v1)

if ! "$python" -c "import tracebook.conformance.cli" 2>/dev/null; then
    echo "tracebook-conformance is not installed: pip install tracebook-conformance==0.6.0" >&2
    exit 1
fi
tb=("$python" -m tracebook.conformance.cli)
candidate="$python $PWD/tests/conformance/tracebook_adapter.py --check-integrity"
mkdir -p "$out"
echo "artifacts: $out"

status=0
for profile in "${profiles[@]}"; do
    echo "== qualify $profile"
    "${tb[@]}" qualify --profile "$profile" --output-dir "$out/qualify-$profile" \
        --timeout 30 --candidate-cmd "$candidate" 2>&1 | tee "$out/qualify-$profile.log"
    rc=${PIPESTATUS[0]}
    echo "exit code: $rc"
    [ "$rc" -eq 0 ] || status=1
done

# The two long campaigns are independent: run them side by side.
pids=()
for profile in "${profiles[@]}"; do
    echo "== campaign $profile: $traces traces x $events events, seed $seed (running)"
    (
        start=$SECONDS
        "${tb[@]}" campaign --profile "$profile" --seed "$seed" --traces "$traces" \
            --events-per-trace "$events" --stop-after-first \
            --output-dir "$out/campaign-$profile" \
            --timeout 30 --candidate-cmd "$candidate"
        rc=$?
        echo "exit code: $rc"
        echo "wall time: $((SECONDS - start)) s"
        exit "$rc"
    ) > "$out/campaign-$profile.log" 2>&1 &
    pids+=($!)
done
for i in "${!profiles[@]}"; do
    wait "${pids[$i]}" || status=1
    echo "== campaign ${profiles[$i]}"
    cat "$out/campaign-${profiles[$i]}.log"
done

echo
echo "== summary"
"$python" - "$out" "${profiles[@]}" <<'EOF'
import json, sys
from pathlib import Path

out, profiles = Path(sys.argv[1]), sys.argv[2:]


def divergence(report):
    for trace in report.get("traces", ()):
        if trace.get("divergence"):
            d = trace["divergence"]
            return f"trace {trace['index']} event {d['event_index']}: {d['category']} {d['path']}"
    return ""


rows = []
for profile in profiles:
    q = out / f"qualify-{profile}" / "qualification.json"
    if q.is_file():
        r = json.loads(q.read_text())
        c = r["checks"]
        detail = divergence(r["campaign"])
        for case in r["suite"]["report"]["cases"]:
            if case["report"]["divergence"]:
                d = case["report"]["divergence"]
                detail = (f"fixed case {case['name']} event {d['event_index']}: "
                          f"{d['category']} {d['path']}")
                break
        rows.append((f"qualify {profile}",
                     f"fixed {c['fixed_cases']['passed']}/{c['fixed_cases']['total']}, "
                     f"traces {c['generated_campaign']['completed_traces']}/"
                     f"{c['generated_campaign']['requested_traces']} x "
                     f"{r['campaign']['events_per_trace']}, coverage "
                     f"{c['semantic_coverage']['covered']}/{c['semantic_coverage']['expected']}",
                     "PASS" if r["qualified"] else "FAIL", detail))
    else:
        rows.append((f"qualify {profile}", "no report (see log)", "FAIL", ""))
    p = out / f"campaign-{profile}" / "campaign.json"
    if p.is_file():
        r = json.loads(p.read_text())
        cov = r["semantic_coverage"]
        rows.append((f"campaign {profile}",
                     f"traces {r['completed_traces']}/{r['requested_traces']} x "
                     f"{r['events_per_trace']} ({r['generated_events']} events, "
                     f"{cov['trades']} trades), coverage "
                     f"{cov['covered_count']}/{cov['expected_count']}",
                     "PASS" if r["conformant"] else "FAIL", divergence(r)))
    else:
        rows.append((f"campaign {profile}", "no report (see log)", "FAIL", ""))
width = max(len(row[0]) for row in rows)
for name, what, verdict, detail in rows:
    print(f"{name:<{width}}  {verdict}  {what}" + (f"  [{detail}]" if detail else ""))
EOF
echo "overall: $([ "$status" -eq 0 ] && echo PASS || echo FAIL)"
exit "$status"
