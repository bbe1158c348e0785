"""tern: Python research actors that speak tern's JSON-over-ZeroMQ wire protocol.

    from tern import Actor, Manager, register_message

See docs/python.md.
"""

from .actor import Actor, ActorRef, LocalActorRef, RemoteActorRef
from .manager import Manager
from .messages import (PayloadError, Reject, Shutdown, Start, Timeout, message_type_name,
                       register_message, registered)
from .security import CurveConfig
from .transport import TransportConfig
from .wire import connect_address

__all__ = [
    "Actor",
    "ActorRef",
    "LocalActorRef",
    "RemoteActorRef",
    "Manager",
    "TransportConfig",
    "CurveConfig",
    "register_message",
    "registered",
    "message_type_name",
    "PayloadError",
    "Start",
    "Shutdown",
    "Timeout",
    "Reject",
    "connect_address",
]

__version__ = "0.1.0"
