#!/usr/bin/env python3
"""Per-module mutation scores from cargo-mutants' outcomes.json (make mutants writes it to
target/mutants/mutants.out/). Score = (caught + timeout) / (caught + missed + timeout): a mutant that
makes the tests hang past `--timeout` is detected (an infinite loop, e.g. `i += 3` -> `i -= 3`);
unviable mutants do not compile and are not counted. Usage: score.py [outcomes.json] [--markdown]"""
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
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path = args[0] if args else "target/mutants/mutants.out/outcomes.json"
    with open(path) as f:
        data = json.load(f)
    counts = defaultdict(lambda: defaultdict(int))
    for o in data["outcomes"]:
        s = o["scenario"]
        if not isinstance(s, dict) or "Mutant" not in s:
            continue
        m = counts[module_of(s["Mutant"]["file"])]
        m[o["summary"]] += 1
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
