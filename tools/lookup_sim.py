#!/usr/bin/env python3
"""Prompt-lookup speed-up on a task, from its expected output and the measured pass costs.

With greedy decoding the drafts decide only how many passes over the weights are made, never
which tokens come out. So for a task whose output is known (an edit of a given code block: the
block with the change; or a free-text answer), the passes that prompt lookup makes are fixed by
the token sequences alone, whatever model writes that output. This program replays the engine's
draft policy (Generation.proposeDraft in Sources/Phi4/Generation/Session.swift: longest n-gram
match, n = 5 … 2, draft length adapted to the acceptance so far) on each task of
tools/lookup_tasks/ (NAME.prompt.txt, NAME.output.txt) and combines the passes with the cost
of a pass over t tokens, measured at full shape by

    phi4 bench --model phi4-q4_0.gguf -p 0 -n 0 -t 2 -r 5 --verify 7 --ctx 64 --json

    python3 tools/lookup_sim.py --costs bench.json [--lookup 7] [--fixed]
    python3 tools/lookup_sim.py --costs bench.json --model-output models/phi4-demo-q8_0.gguf
    python3 tools/lookup_sim.py --check-engine models/phi4-demo-q8_0.gguf

--fixed replays the earlier policy (always propose up to --lookup tokens, n = 3 … 1) for
comparison. --model-output replays on a model's own greedy output instead (e.g. the demo model,
which does not perform the edits: it drifts into repetition). --check-engine runs `phi4 generate --greedy --lookup N` with the given model on each
task prompt and checks that the engine's proposed/accepted counts equal this replay on the
model's own output (the replay is a copy of the engine's policy; this keeps the two in step).
Needs only the standard library and a release build of phi4 (`swift build -c release`).
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = os.path.join(ROOT, "tools", "lookup_tasks")
TOKENIZER = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "tokenizer", "phi4")
LONGEST_MATCH = 5       # Generation.longestMatch
SHORTEST_MATCH = 2      # Generation.shortestMatch
DRAFT_THRESHOLD = 0.4   # Generation.draftThreshold
UNUSED_MATCH_DECAY = 0.9  # Generation.unusedMatchDecay
MAX_DRAFT = 7           # Ops.smallBatch - 1


def find_match(history, longest, shortest):
    """(n, start of the continuation) of the most recent earlier occurrence of the longest
    n-gram ending `history`, n = longest … shortest, or (0, None)."""
    h = len(history)
    for n in range(min(longest, h - 1), shortest - 1, -1):
        start = h - n - 1
        while start >= 0:
            if history[start:start + n] == history[h - n:h] and h - (start + n) > 0:
                return n, start + n
            start -= 1
    return 0, None


def replay(prompt, output, lookup, fixed=False):
    """The passes (tokens in each) that generating `output` after `prompt` takes, greedy, with
    prompt lookup; and the proposed and accepted draft counts."""
    context = list(prompt)
    accepted_by = [0.0] * LONGEST_MATCH
    tried_by = [0.0] * LONGEST_MATCH
    passes, proposed, accepted = [], 0, 0
    i = 0  # output[i] is the token just sampled
    while i + 1 < len(output):
        history = context + [output[i]]
        room = min(lookup, len(output) - (i + 1), MAX_DRAFT)
        n, start = find_match(history, *((3, 1) if fixed else (LONGEST_MATCH, SHORTEST_MATCH))) if room > 0 else (0, None)
        draft = []
        if start is not None:
            available = min(room, len(history) - start)
            count = available
            if not fixed:
                rate = (accepted_by[n - 1] + 1) / (tried_by[n - 1] + 2)
                count, reach = 0, rate
                while count < available and reach >= DRAFT_THRESHOLD:
                    count += 1
                    reach *= rate
                if count == 0:
                    accepted_by[n - 1] *= UNUSED_MATCH_DECAY
                    tried_by[n - 1] *= UNUSED_MATCH_DECAY
            draft = history[start:start + count]
        a = 0
        while a < len(draft) and draft[a] == output[i + 1 + a]:
            a += 1
        passes.append(1 + len(draft))
        proposed += len(draft)
        accepted += a
        if draft:
            accepted_by[n - 1] += a
            tried_by[n - 1] += min(len(draft), a + 1)
        context = history + draft[:a]
        i += 1 + a
    return passes, proposed, accepted


def tokenize(phi4, text):
    out = subprocess.run([phi4, "tokenize", "--tokenizer", TOKENIZER, text], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def load_tasks(phi4, names):
    tasks = []
    for path in sorted(glob.glob(os.path.join(TASKS, "*.prompt.txt"))):
        name = os.path.basename(path)[:-len(".prompt.txt")]
        if names and name not in names:
            continue
        prompt = open(path, encoding="utf-8").read().rstrip("\n")  # as "$(cat FILE)" passes it
        output = open(os.path.join(TASKS, name + ".output.txt"), encoding="utf-8").read()
        tasks.append((name, prompt, tokenize(phi4, prompt), tokenize(phi4, output)))
    return tasks


def model_output(phi4, model, text, max_tokens=120):
    """The model's own greedy continuation of `text` (token ids)."""
    out = subprocess.run([phi4, "generate", "--model", model, "--prompt", text, "--greedy", "--max-tokens", str(max_tokens),
                          "--print-ids"], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.strip().split(",") if x]


def check_engine(phi4, model, tasks, lookups):
    ok = True
    for name, text, prompt, _ in tasks:
        base = [phi4, "generate", "--model", model, "--prompt", text, "--greedy", "--max-tokens", "120"]
        output = model_output(phi4, model, text)
        for lookup in lookups:
            err = subprocess.run(base + ["--lookup", str(lookup)], capture_output=True, text=True, check=True).stderr
            m = re.search(r"lookup: (\d+) of (\d+) proposed", err)
            engine = (int(m.group(2)), int(m.group(1))) if m else (0, 0)
            _, proposed, accepted = replay(prompt, output, lookup)
            same = engine == (proposed, accepted)
            ok &= same
            print(f"{name:16s} --lookup {lookup}: engine {engine[1]} of {engine[0]} accepted, "
                  f"replay {accepted} of {proposed}: {'same' if same else 'DIFFERENT'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--costs", help="phi4 bench --verify N --json output (a file), for verify_s")
    ap.add_argument("--lookup", type=int, default=7)
    ap.add_argument("--fixed", action="store_true", help="the earlier policy: always up to --lookup drafts, n ≤ 3")
    ap.add_argument("--tasks", nargs="*", help="task names (default: all in tools/lookup_tasks)")
    ap.add_argument("--check-engine", metavar="MODEL", help="compare with the engine's counts on this model")
    ap.add_argument("--model-output", metavar="MODEL",
                    help="replay on this model's own greedy output (120 tokens) instead of the expected output")
    ap.add_argument("--phi4", default=os.path.join(ROOT, ".build", "release", "phi4"))
    args = ap.parse_args()
    tasks = load_tasks(args.phi4, args.tasks)
    if args.check_engine:
        sys.exit(0 if check_engine(args.phi4, args.check_engine, tasks, [1, 3, 7]) else 1)
    costs = None
    if args.costs:
        verify_s = json.load(open(args.costs))["verify_s"]
        costs = [s / verify_s[0] for s in verify_s]
        print("pass cost (× one token) for 1…%d tokens: %s" % (len(costs), " ".join("%.2f" % c for c in costs)))
    for name, text, prompt, output in tasks:
        if args.model_output:
            output = model_output(args.phi4, args.model_output, text)
        passes, proposed, accepted = replay(prompt, output, args.lookup, args.fixed)
        line = (f"{name:16s} {len(output)} tokens in {len(passes)} passes ({len(output) / max(1, len(passes)):.2f} per pass), "
                f"drafts {accepted} of {proposed} accepted")
        if costs:
            if max(passes) > len(costs):
                sys.exit("the cost table is shorter than the longest pass: run bench with --verify %d" % (max(passes) - 1))
            # Without lookup: one pass per token after the first (which comes with the prompt).
            line += f", est. speed-up {(len(output) - 1) / sum(costs[t - 1] for t in passes):.2f}×"
        print(line)


if __name__ == "__main__":
    main()
