"""Lambda entry point (the template's ``Handler: disconnect.handler``): ``tokenrelay_ws.disconnect``."""

from tokenrelay_ws.disconnect import handler

__all__ = ["handler"]
