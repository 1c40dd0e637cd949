#!/usr/bin/env python3
"""Pick filter values for the page benchmark from an NDJSON events file.

Prints JSON: top user, top target, a rare (single-event) target, a month range,
and counts, so that bench/page.sh can build its URLs. Cached next to the file.
"""
import collections, json, os, sys

path = sys.argv[1]
cache = path + ".picks.json"
if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(path):
    print(open(cache).read())
    sys.exit(0)

users = collections.Counter()
targets = collections.Counter()
user_action = collections.Counter()
months = collections.Counter()
n = 0
with open(path) as f:
    for line in f:
        # cheap field extraction without full json parsing where possible
        e = json.loads(line)
        n += 1
        u = e["user"]["username"]
        users[u] += 1
        targets[e["resource_target"]] += 1
        user_action[(u, e["action"])] += 1
        months[e["time"][:7]] += 1

top_user, top_user_n = users.most_common(1)[0]
top_target, top_target_n = targets.most_common(1)[0]
singles = sorted(t for t, c in targets.items() if c == 1)
rare = singles[len(singles) // 2] if singles else targets.most_common()[-1][0]
# a full month in the middle of the window
ms = sorted(months)
mid = ms[len(ms) // 2]
y, m = int(mid[:4]), int(mid[5:7])
nxt = f"{y + (m == 12):04d}-{(m % 12) + 1:02d}-01"
out = {
    "events": n,
    "top_user": top_user, "top_user_events": top_user_n,
    "top_target": top_target, "top_target_events": top_target_n,
    "rare_target": rare, "single_event_targets": len(singles),
    "user_write_events": user_action[(top_user, "write")],
    "user_cordon_events": user_action[(top_user, "cordon")],
    "from": f"{mid}-01", "to": nxt, "month_events": months[mid],
    "distinct_users": len(users), "distinct_targets": len(targets),
}
s = json.dumps(out)
with open(cache, "w") as f:
    f.write(s)
print(s)
