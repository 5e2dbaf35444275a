"""Local process supervisor behind `make up` / `make down`, also used by integration tests."""

from recserve.devstack.stack import SERVICES, Stack, StackPorts

__all__ = ["SERVICES", "Stack", "StackPorts"]
