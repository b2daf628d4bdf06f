"""Lambda entry point (the template's ``Handler: message.handler``): ``tokenrelay_ws.message``."""

from tokenrelay_ws import environment
from tokenrelay_ws.message import handler

environment.prepare()  # at init: the first invocation builds nothing

__all__ = ["handler"]
