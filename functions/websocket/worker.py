"""Lambda entry point (the template's ``Handler: worker.handler``): ``tokenrelay_ws.worker``."""

from tokenrelay_ws.worker import handler

__all__ = ["handler"]
