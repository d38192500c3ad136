"""Plots a soak run: answers per second, p99 latency and Envoy's RSS over time, with the fault windows.

    python plot.py <run dir with timeseries.csv and report.json> <out.png>
"""
import csv
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {
    ("jwks", "fail"): "#f4a3a3",
    ("jwks", "hang"): "#e06666",
    ("introspection", "slow"): "#ffe599",
    ("introspection", "down"): "#f1c232",
    ("collector", "down"): "#9fc5e8",
    ("collector", "hang"): "#6fa8dc",
    ("garbage", True): "#b4a7d6",
    ("upstream", "faulty"): "#b6d7a8",
}
LABELS = {
    ("jwks", "fail"): "JWKS 500",
    ("jwks", "hang"): "JWKS hang",
    ("introspection", "slow"): "introspection slow",
    ("introspection", "down"): "introspection down",
    ("collector", "down"): "collector down",
    ("collector", "hang"): "collector hang",
    ("garbage", True): "garbage burst",
    ("upstream", "faulty"): "upstream 500/truncated",
}


def main(run_dir, out):
    rows = list(csv.DictReader(open(f"{run_dir}/timeseries.csv")))
    report = json.load(open(f"{run_dir}/report.json"))
    t = [int(r["t_s"]) for r in rows]
    rps = [int(r["rps"]) for r in rows]
    p99 = [float(r["p99_ms"]) for r in rows]
    ep99 = [float(r["envoy_p99_ms"]) for r in rows]
    rss = [float(r["rss_mib"]) for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True)
    seen = set()
    for ax in axes:
        for w in report["windows"]:
            key = (w["key"], w["value"])
            label = LABELS.get(key) if key not in seen and ax is axes[0] else None
            if label:
                seen.add(key)
            ax.axvspan(w["start"], w["end"], color=COLORS.get(key, "#dddddd"), alpha=0.55, lw=0, label=label)
        for r in report["rotations"]:
            ax.axvline(r, color="#674ea7", lw=1, ls="--")
    axes[0].plot(t, rps, color="black", lw=0.8)
    axes[0].set_ylabel("answers / s")
    axes[1].plot(t, p99, color="#cc0000", lw=0.8, label="client (from the scheduled time)")
    axes[1].plot(t, ep99, color="#444444", lw=0.8, label="Envoy (access log duration)")
    axes[1].legend(loc="upper right", fontsize=7, frameon=False)
    axes[1].set_ylabel("p99 latency (ms)")
    axes[1].axhline(report["boundMs"], color="#cc0000", ls=":", lw=1)
    axes[2].plot(t, rss, color="#0b5394", lw=1)
    axes[2].axhline(report["rss"]["bound"]["boundKiB"] / 1024, color="#0b5394", ls=":", lw=1)
    axes[2].set_ylabel("Envoy RSS (MiB)")
    axes[2].set_ylim(0, report["rss"]["bound"]["boundKiB"] / 1024 * 1.1)
    axes[2].set_xlabel("seconds (dashed: key rotation; dotted: the stated bounds)")
    opt = report["options"]
    fig.suptitle(
        f"fhirgate soak: {report['requests']} requests in {opt['duration']} s ({opt['rate']} req/s), "
        f"{report['tokens']['devices']} device JWTs + {report['tokens']['opaque']} opaque, "
        f"Envoy --concurrency 2, two fault cycles",
        fontsize=10,
    )
    axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, 1.45), ncol=4, fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
