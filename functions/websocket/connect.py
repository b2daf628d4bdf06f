"""Lambda entry point (the template's ``Handler: connect.handler``): ``tokenrelay_ws.connect``."""

from tokenrelay_ws.connect import handler

__all__ = ["handler"]
