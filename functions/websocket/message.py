"""Lambda entry point (the template's ``Handler: message.handler``): ``tokenrelay_ws.message``."""

from tokenrelay_ws.message import handler

__all__ = ["handler"]
