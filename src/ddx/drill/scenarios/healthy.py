"""The healthy control: the stack under its ordinary load, nothing broken.

A diagnosis tool that cries wolf on a healthy site is worse than none: here
nothing may rank above 50%."""

from __future__ import annotations

from ddx.drill.scenarios import Scenario, register
from ddx.drill.stack import Stack


def _nothing(stack: Stack) -> None:
    """No fault: the load keeps running while ddx looks."""


register(Scenario(
    name="healthy",
    expected="",
    summary="nothing is broken: the stack serves its ordinary load (control run; no cause may rank above 50%)",
    inject=_nothing,
))
