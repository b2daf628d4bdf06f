#!/bin/bash
# Lambda Web Adapter entry point: the adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap)
# runs this script, waits for $PORT to answer its readiness check, then proxies
# each invocation to uvicorn and streams the response (AWS_LWA_INVOKE_MODE=response_stream).
PATH=$PATH:$LAMBDA_TASK_ROOT/bin \
  PYTHONPATH=$PYTHONPATH:/opt/python:$LAMBDA_RUNTIME_DIR:$LAMBDA_TASK_ROOT \
  exec python -m uvicorn --host 127.0.0.1 --port="${PORT:-8000}" --no-access-log app:app
