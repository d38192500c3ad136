#!/usr/bin/env python3
"""Per-module mutation scores from cargo-mutants' outcomes.json (make mutants writes it to
target/mutants/mutants.out/). Score = (caught + timeout) / (caught + missed + timeout): a mutant that
makes the tests hang past `--timeout` is detected (an infinite loop, e.g. `i += 3` -> `i -= 3`);
unviable mutants do not compile and are not counted.

Usage: score.py [--list LIST] [outcomes.json ...]
  Without --list: every mutant of the outcome files (later files win for the same mutant).
  With --list (the output of `make mutants MUTANTS_ARGS=--list`): exactly the mutants listed, each
  with its latest outcome, e.g. a full run followed by `--iterate` runs, which test only what was
  not caught before (a listed mutant with no outcome is reported as untested)."""
import json
import sys
from collections import defaultdict

MODULES = [
    ("token verification", ("src/core/token/verify.rs", "src/core/token/verifier.rs",
                            "src/core/token/claims.rs", "src/core/token/alg.rs",
                            "src/core/token/jws.rs")),
    ("sender-constrained tokens", ("src/core/token/sender.rs", "src/core/token/binding.rs",
                                   "src/core/token/dpop")),
    ("FHIR request model", ("src/core/fhir/",)),
    ("SMART", ("src/core/smart/",)),
    ("decision", ("src/core/decision.rs",)),
    ("response checks", ("src/core/response.rs", "src/core/response/")),
    ("consent", ("src/core/consent.rs",)),
    ("exchange", ("src/core/exchange/",)),
]


def module_of(path):
    for name, prefixes in MODULES:
        if any(path.startswith(p) for p in prefixes):
            return name
    return "other"


def main():
    argv = sys.argv[1:]
    listed = None
    if "--list" in argv:
        i = argv.index("--list")
        with open(argv[i + 1]) as f:
            listed = [line.strip() for line in f if line.strip()]
        argv = argv[:i] + argv[i + 2:]
    paths = argv or ["target/mutants/mutants.out/outcomes.json"]
    latest = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for o in data["outcomes"]:
            s = o["scenario"]
            if isinstance(s, dict) and "Mutant" in s:
                latest[s["Mutant"]["name"]] = (s["Mutant"]["file"], o["summary"])
    if listed is not None:
        chosen = {}
        for name in listed:
            file = name.split(":", 1)[0]
            chosen[name] = (file, latest.get(name, (file, "Untested"))[1])
        latest = chosen
    counts = defaultdict(lambda: defaultdict(int))
    for file, summary in latest.values():
        counts[module_of(file)][summary] += 1
    untested = sum(c["Untested"] for c in counts.values())
    if untested:
        print(f"warning: {untested} listed mutants have no outcome", file=sys.stderr)
    rows = []
    total = defaultdict(int)
    for name, _ in MODULES + [("other", ())]:
        if name not in counts:
            continue
        c = counts[name]
        caught, missed = c["CaughtMutant"], c["MissedMutant"]
        timeout, unviable = c["Timeout"], c["Unviable"]
        for k, v in (("caught", caught), ("missed", missed), ("timeout", timeout),
                     ("unviable", unviable)):
            total[k] += v
        viable = caught + missed + timeout
        score = f"{100 * (caught + timeout) / viable:.1f} %" if viable else "-"
        rows.append((name, caught + missed + timeout + unviable, caught, missed, timeout,
                     unviable, score))
    viable = total["caught"] + total["missed"] + total["timeout"]
    rows.append(("all", viable + total["unviable"], total["caught"], total["missed"],
                 total["timeout"], total["unviable"],
                 f"{100 * (total['caught'] + total['timeout']) / viable:.1f} %" if viable else "-"))
    print("| module | mutants | caught | missed | timeout | unviable | score |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


if __name__ == "__main__":
    main()
