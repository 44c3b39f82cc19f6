#!/usr/bin/env python3
"""Derives the hand-broken golden traces from valid-tcp-quiet/ (a real TCP run of the tokio host,
no faults, that conforms). Each broken trace changes one thing; tests/golden.rs asserts the
specific report. Re-run after regenerating valid-tcp-quiet/: python3 make_broken.py"""
import copy, json, os, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
VALID = os.path.join(HERE, "valid-tcp-quiet")


def load(node):
    lines = open(os.path.join(VALID, node + ".ndjson")).read().splitlines()
    return lines[0], [json.loads(line) for line in lines[1:]]


def save(name, node, header, events):
    out = os.path.join(HERE, name)
    if not os.path.isdir(out):
        shutil.copytree(VALID, out)
    with open(os.path.join(out, node + ".ndjson"), "w") as f:
        f.write(header + "\n")
        for event in events:
            f.write(json.dumps(event, separators=(",", ":")) + "\n")


def renumber(events):
    sequence = 0
    for event in events:
        if event["kind"] == "Restart" and event is not events[0]:
            sequence = 0
        event["sequence"] = sequence
        sequence += 1


def kind_name(event):
    return event["kind"] if isinstance(event["kind"], str) else next(iter(event["kind"]))


def message_name(event):
    body = event["kind"][kind_name(event)]
    return next(iter(body["message"]))


def inputs(events):
    """Groups events into inputs (an input starts at a Receive, Timeout or Restart)."""
    groups = []
    for event in events:
        if kind_name(event) in ("Receive", "Timeout", "Restart") or not groups:
            groups.append([])
        groups[-1].append(event)
    return groups


for name in ["broken-wrong-ballot", "broken-commit-without-quorum", "broken-missing-completion", "broken-reordered-receive"]:
    shutil.rmtree(os.path.join(HERE, name), ignore_errors=True)

# 1. wrong ballot: m1 answers its first Accept with an Accepted of ballot round 7 (send and
#    receive agree, so the merge links them; the model's follower sends the right ballot).
header, m1 = load("m1")
header0, m0 = load("m0")
first = next(e for e in m1 if kind_name(e) == "Send" and message_name(e) == "Accepted")
slot = first["kind"]["Send"]["message"]["Accepted"]["slot"]
original = copy.deepcopy(first["kind"]["Send"]["message"])
first["kind"]["Send"]["message"]["Accepted"]["ballot"]["round"] = 7
for event in m0:
    if kind_name(event) == "Receive" and event["kind"]["Receive"]["message"] == original \
            and event["kind"]["Receive"]["from"]["Master"]["node"] == 1:
        event["kind"]["Receive"]["message"]["Accepted"]["ballot"]["round"] = 7
        break
save("broken-wrong-ballot", "m1", header, m1)
save("broken-wrong-ballot", "m0", header0, m0)

# 2. commit without quorum: the leader reports commit_index 1 after the first Accepted of
#    slot 1 (one follower plus itself: 2 of 5, below the quorum of 3).
header0, m0 = load("m0")
for group in inputs(m0):
    head = group[0]
    if kind_name(head) == "Receive" and message_name(head) == "Accepted":
        for event in group:
            event["post"]["Master"]["commit_index"] = event["post"]["Master"]["commit_index"] + 1
        break
save("broken-commit-without-quorum", "m0", header0, m0)

# 3. missing completion: the proxy's last request never completes (its RequestCompleted and
#    Reply are gone; the counters still say what they said).
headerp, p1 = load("p1")
last = max(i for i, e in enumerate(p1) if kind_name(e) == "RequestCompleted")
del p1[last:last + 2]
renumber(p1)
save("broken-missing-completion", "p1", headerp, p1)

# 4. reordered receive: m0 handles m2's first Accepted before it sent the Accept it answers.
header0, m0 = load("m0")
groups = inputs(m0)
accepted = next(i for i, g in enumerate(groups) if kind_name(g[0]) == "Receive"
                and message_name(g[0]) == "Accepted" and g[0]["kind"]["Receive"]["from"]["Master"]["node"] == 2)
accepted_slot = groups[accepted][0]["kind"]["Receive"]["message"]["Accepted"]["slot"]
sender = next(i for i, g in enumerate(groups) if any(kind_name(e) == "Send" and message_name(e) == "Accept"
              and e["kind"]["Send"]["message"]["Accept"]["slot"] == accepted_slot for e in g))
moved = groups.pop(accepted)
groups.insert(sender, moved)
m0 = [e for g in groups for e in g]
renumber(m0)
save("broken-reordered-receive", "m0", header0, m0)
print("wrote the broken traces")
