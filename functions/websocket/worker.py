"""Lambda entry point (the template's ``Handler: worker.handler``): ``tokenrelay_ws.worker``."""

from tokenrelay_ws import environment
from tokenrelay_ws.worker import handler

environment.prepare(worker=True)  # at init: the first invocation builds nothing

__all__ = ["handler"]
