"""That the run's streams reached the metrics: EMF lines locally, CloudWatch for a stack.

Every stream emits one EMF document when it ends (tokenrelay/telemetry/metrics.py). In
Lambda, CloudWatch Logs turns it into metrics: the check asks GetMetricData for the sums of
``StreamCompleted`` and ``StreamCancelled`` (dimension ``service``, what the alarms read)
since the run started, and waits for them to reach the run's own counts (EMF metrics take a
minute or two). Locally, ``scripts/dev`` writes what its processes print to ``.dev/*.log``:
the check finds the document of each of the run's streams there, with the right outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from .run import Run, require

LOCAL_WAIT_S = 15.0


def emf_documents(log_dir: Path) -> dict[str, dict[str, Any]]:
    """stream id -> its EMF document, from every log line that holds one."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            start = line.find('{"_aws"')
            if start < 0:
                continue
            try:
                doc = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(doc, dict) and "stream_id" in doc:
                found[doc["stream_id"]] = doc
    return found


def _value(doc: dict[str, Any], metric: str) -> float:
    value = doc.get(metric, 0)
    return float(value[0] if isinstance(value, list) else value)


def _missing(run: Run, docs: dict[str, dict[str, Any]]) -> list[str]:
    wanted = [(i, c, "StreamCompleted") for i, c in run.completed.items()]
    wanted += [(i, c, "StreamCancelled") for i, c in run.cancelled.items()]
    return [f"{check} ({metric})" for i, check, metric in wanted if i not in docs or _value(docs[i], metric) != 1.0]


async def local(run: Run, wait_s: float) -> str:
    log_dir = run.target.log_dir
    require(log_dir is not None and log_dir.is_dir(), f"no log directory {log_dir}")
    assert log_dir is not None
    deadline = time.monotonic() + wait_s
    while True:
        docs = emf_documents(log_dir)
        missing = _missing(run, docs)
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    hint = (
        " (is METRICS_ENABLED on? scripts/dev turns it on)"
        if len(missing) == len(run.completed) + len(run.cancelled)
        else ""
    )
    require(not missing, f"no EMF document for {', '.join(missing)} in {log_dir}/*.log{hint}")
    return (
        f"{len(run.completed) + len(run.cancelled)} EMF documents in {log_dir.name}/*.log: "
        f"{len(run.completed)} StreamCompleted, {len(run.cancelled)} StreamCancelled"
    )


def _sums(cloudwatch: Any, run: Run, since: dt.datetime) -> dict[str, float]:
    now = dt.datetime.now(dt.UTC)
    queries = [
        {
            "Id": metric.lower(),
            "MetricStat": {
                "Metric": {
                    "Namespace": run.target.namespace,
                    "MetricName": metric,
                    "Dimensions": [{"Name": "service", "Value": run.target.service}],
                },
                "Period": 60,
                "Stat": "Sum",
            },
        }
        for metric in ("StreamCompleted", "StreamCancelled")
    ]
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=queries, StartTime=since, EndTime=now + dt.timedelta(minutes=1)
    )
    return {r["Id"]: sum(r["Values"]) for r in answer["MetricDataResults"]}


async def cloudwatch(run: Run, started: float, wait_s: float) -> str:
    import boto3

    client = boto3.client("cloudwatch", region_name=run.target.region)
    since = dt.datetime.fromtimestamp(started - 120, dt.UTC).replace(second=0, microsecond=0)
    deadline = time.monotonic() + wait_s
    while True:
        sums = await asyncio.to_thread(_sums, client, run, since)
        done = sums.get("streamcompleted", 0) >= len(run.completed)
        done = done and sums.get("streamcancelled", 0) >= len(run.cancelled)
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(15)
    completed, cancelled = sums.get("streamcompleted", 0), sums.get("streamcancelled", 0)
    counts = f"StreamCompleted {completed:.0f} (want {len(run.completed)}), StreamCancelled {cancelled:.0f}"
    require(done, f"after {wait_s:.0f} s CloudWatch shows {counts} (want {len(run.cancelled)})")
    return f"CloudWatch {run.target.namespace}, service={run.target.service}: {counts} (want {len(run.cancelled)})"
