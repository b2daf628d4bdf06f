"""Lambda entry point (the template's ``Handler: disconnect.handler``): ``tokenrelay_ws.disconnect``."""

from tokenrelay_ws import environment
from tokenrelay_ws.disconnect import handler

environment.prepare()  # at init: the first invocation builds nothing

__all__ = ["handler"]
