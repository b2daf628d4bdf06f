"""Lambda entry point (the template's ``Handler: connect.handler``): ``tokenrelay_ws.connect``."""

from tokenrelay_ws import environment
from tokenrelay_ws.connect import handler

environment.prepare()  # at init: the first invocation builds nothing

__all__ = ["handler"]
