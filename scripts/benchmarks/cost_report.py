"""The bill of one path's run (``cost_paths.Counts``), per stream and per 1,000 streams, and its chart.

Lambda's own log lines (not printed by the function, but ingested into its log group) are counted
per invocation from their documented formats (``PLATFORM_LINES``): ``START``, ``END``, ``REPORT`` and,
with active tracing, the ``XRAY`` line. Each is ingested as one log event.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from scripts.benchmarks import cost_model as m
from scripts.benchmarks.cost_paths import Counts

REQUEST_ID = "8e1c3b1a-2f4d-4c5e-9a7b-1d2e3f4a5b6c"
PLATFORM_LINES = (  # one invocation's platform log lines (text format), as Lambda writes them
    f"START RequestId: {REQUEST_ID} Version: $LATEST",
    f"END RequestId: {REQUEST_ID}",
    f"REPORT RequestId: {REQUEST_ID}\tDuration: 5012.34 ms\tBilled Duration: 5013 ms\tMemory Size: 512 MB\t"
    "Max Memory Used: 98 MB\t",
    "XRAY TraceId: 1-5f8a1b2c-0123456789abcdef01234567\tSegmentId: 0123456789abcdef\tSampled: true\t",
)
PLATFORM_BYTES = sum(len(line.encode()) + 1 for line in PLATFORM_LINES)
GOALS = {"sse": 0.05, "websocket": 0.10}
COUNTED_ERRORS = ("", "ConditionalCheckFailedException", "TransactionCanceledException")


def dynamodb_units(records: list[dict[str, Any]]) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """(RRU, WRU, by table) of the metered calls DynamoDB bills (served, or refused by a condition)."""
    rru = wru = 0.0
    tables: dict[str, list[float]] = {}
    for record in records:
        if record["status"] != 200 and record["error"] not in COUNTED_ERRORS:
            continue
        for item in record["items"]:
            units: float = m.write_units(item["before"], item["after"], item["transactional"])
            wru += units
            tables.setdefault(item["table"], [0.0, 0.0])[1] += units
        for read in record["read"]:
            units = m.read_units(read["size"], read["consistent"])
            rru += units
            tables.setdefault(read["table"], [0.0, 0.0])[0] += units
    return rru, wru, {t: (r, w) for t, (r, w) in tables.items()}


def bill(c: Counts) -> list[m.Line]:
    """What one stream of this run costs, line by line."""
    n = max(c.streams, 1)
    gb_s = sum(m.gb_seconds(c.memory_mb, d) for ds in c.invocations.values() for d in ds) / n
    gb_s += m.gb_seconds(c.memory_mb, c.extra_s) / n if c.extra_s else 0.0
    requests = sum(len(ds) for ds in c.invocations.values()) / n
    rru, wru, _ = dynamodb_units(c.dynamodb)
    log_bytes = sum(c.log_bytes.values()) + PLATFORM_BYTES * requests * n
    lines = [
        m.Line("Lambda", "requests", requests, "lambda_request"),
        m.Line("Lambda", "GB-seconds", gb_s, "lambda_gb_s_arm64"),
        m.Line("DynamoDB", "read request units", rru / n, "ddb_rru"),
        m.Line("DynamoDB", "write request units", wru / n, "ddb_wru"),
        m.Line("CloudWatch Logs", "GB ingested (logs, EMF, platform lines)", log_bytes / n / 1e9, "logs_gb"),
        m.Line("Data transfer out", "GB to the client", c.egress_bytes / n / 1e9, "egress_gb"),
    ]
    if c.path == "websocket":
        units = c.ws_posts if c.ws_max_post <= 32 * 1024 else math.ceil(c.ws_post_bytes / (32 * 1024))
        minutes = sum(m.connection_minutes(s) for s in c.connection_s)
        lines += [
            m.Line("API Gateway", "WebSocket messages (32 KB units)", (units + c.ws_client_messages) / n, "ws_message"),
            m.Line("API Gateway", "connection minutes", minutes / n, "ws_minute"),
        ]
    if c.path == "httpapi":
        units = sum(m.http_api_units(size) for size in c.http_api_bytes)
        lines.append(m.Line("API Gateway", "HTTP API requests (512 KB units)", units / n, "http_api_request"))
    return lines


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary_row(c: Counts) -> dict[str, Any]:
    lines = bill(c)
    n = max(c.streams, 1)
    return {
        "path": c.path,
        "label": c.label,
        "window_ms": c.window_ms,
        "window_max_ms": c.window_max_ms,
        "streams": c.streams,
        "left_early": c.left_early,
        "failures": c.failures,
        "usd_per_1k": m.per_thousand(lines),
        "by_service": m.by_service(lines),
        "lines": [(line.service, line.item, line.quantity, line.usd * 1000) for line in lines],
        "after_left_per_1k": (c.tokens_generated - c.tokens_received) / n * 1000,
        "posts_per_stream": c.ws_posts / n,
        "dynamodb_calls_per_stream": len(c.dynamodb) / n,
        "invocations_per_stream": {f: len(ds) / n for f, ds in c.invocations.items()},
        "seconds_per_stream": {f: sum(ds) / n for f, ds in c.invocations.items()},
        "log_bytes_per_stream": sum(c.log_bytes.values()) / n,
        "emf_bytes_per_stream": sum(c.emf_bytes.values()) / n,
        "ttft_ms_p50": pct(c.ttft_ms, 50),
        "latency_ms_p50": pct(c.latency_ms, 50),
        "latency_ms_p99": pct(c.latency_ms, 99),
        "inits_s": {f: statistics.median(v) for f, v in c.inits.items() if v},
        "dynamodb_by_table": {t: (r / n, w / n) for t, (r, w) in dynamodb_units(c.dynamodb)[2].items()},
        "dynamodb_calls_by_op": calls_by_op(c.dynamodb, n),
    }


def calls_by_op(records: list[dict[str, Any]], streams: int) -> dict[str, float]:
    """``{"Table Operation": calls per stream}``, most first."""
    counts: dict[str, int] = {}
    for record in records:
        tables = {i["table"] for i in record["items"]} | {r["table"] for r in record["read"]}
        key = f"{','.join(sorted(tables)) or '?'} {record['op']}"
        counts[key] = counts.get(key, 0) + 1
    return {k: v / streams for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def markdown(rows: list[dict[str, Any]]) -> str:
    main = [r for r in rows if r["window_ms"] is None or r["label"].endswith("(as deployed)")]
    out = ["| path | $ per 1k streams | goal | Lambda | DynamoDB | API Gateway | CloudWatch Logs | data out "
           "| tokens generated after the client left, per 1k | failures |",
           "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in main:
        goal = GOALS.get(r["path"])
        verdict = f"≤ ${goal:.2f}: {'met' if r['usd_per_1k'] <= goal else 'not met'}" if goal else "–"
        s = r["by_service"]
        out.append(
            f"| {r['label']} | **${r['usd_per_1k']:.4f}** | {verdict} | ${s.get('Lambda', 0):.4f} | ${s.get('DynamoDB', 0):.4f} "
            f"| ${s.get('API Gateway', 0):.4f} | ${s.get('CloudWatch Logs', 0):.4f} | ${s.get('Data transfer out', 0):.4f} "
            f"| {r['after_left_per_1k']:,.0f} ({r['left_early']} of {r['streams']} left early) | {r['failures']} |"
        )
    out += ["", "| path | line | per stream | $ per 1k streams |", "|---|---|---|---|"]
    for r in main:
        for service, item, quantity, usd in r["lines"]:
            out.append(f"| {r['label']} | {service}: {item} | {quantity:.6g} | ${usd:.5f} |")
    out += [
        "",
        "| path | DynamoDB table | RRU per stream | WRU per stream | calls per stream |",
        "|---|---|---|---|---|",
    ]
    for r in main:
        for table, (rru, wru) in sorted(r["dynamodb_by_table"].items(), key=lambda kv: -kv[1][1]):
            calls = ", ".join(
                f"{k.split(' ')[1]} {v:.1f}" for k, v in r["dynamodb_calls_by_op"].items() if k.split(" ")[0] == table
            )
            out.append(f"| {r['label']} | {table} | {rru:.1f} | {wru:.1f} | {calls} |")
    windows = [r for r in rows if r["window_ms"] is not None]
    if windows:
        out += ["", "| WebSocket flush window | posts per stream | $ per 1k streams | API Gateway $ | Lambda $ "
                "| token latency p50 / p99 | first token p50 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in windows:
            s = r["by_service"]
            window = "one post per token" if r["window_ms"] == 0 else f"{r['window_ms']:g} ms"
            if r.get("window_max_ms"):
                window = f"{r['window_ms']:g} → {r['window_max_ms']:g} ms, adaptive"
            if r["label"].endswith("(as deployed)"):
                window += " (template default)"
            out.append(
                f"| {window} | {r['posts_per_stream']:.0f} | ${r['usd_per_1k']:.4f} | ${s.get('API Gateway', 0):.4f} "
                f"| ${s.get('Lambda', 0):.4f} | {r['latency_ms_p50']:.0f} / {r['latency_ms_p99']:.0f} ms | {r['ttft_ms_p50']:.0f} ms |"
            )
    return "\n".join(out) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no chart"
    main = [r for r in rows if r["window_ms"] is None or r["label"].endswith("(as deployed)")]
    services = ["Lambda", "DynamoDB", "API Gateway", "CloudWatch Logs", "Data transfer out"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    left = [0.0] * len(main)
    for i, service in enumerate(services):
        values = [r["by_service"].get(service, 0.0) for r in main]
        ax.barh([r["label"] for r in main], values, left=left, color=f"C{i}", label=service)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, r in enumerate(main):
        ax.text(left[y], y, f" ${r['usd_per_1k']:.3f}", va="center", fontsize=9)
        goal = GOALS.get(r["path"])
        if goal:
            ax.plot([goal, goal], [y - 0.4, y + 0.4], color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("$ per 1,000 streams (500 tokens at 100 tokens/s; dashed: the goal)")
    ax.set_title("Where the money goes, per path (us-east-1 list prices)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlim(0, max([*left, 0.1]) * 1.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
