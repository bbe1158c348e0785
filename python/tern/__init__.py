"""tern: Python research actors that speak tern's JSON-over-ZeroMQ wire protocol.

    from tern import Actor, Manager, register_message

See docs/python.md.
"""

from . import frames, hgrm
from .actor import Actor, ActorRef, LocalActorRef, RemoteActorRef, SendError
from .ask import AskFuture, AskRejected
from .manager import Manager
from .messages import (FieldLimitError, PayloadError, Reject, Shutdown, Start, Timeout, message_type_name,
                       register_message, registered)
from .registry import NameTaken, NotFound, Offline, RegistryError
from .security import CurveConfig
from .topic import TopicCredit, TopicFeed, TopicSubscribe, TopicUnsubscribe
from .transport import EndReport, TransportConfig
from .wire import connect_address

__all__ = [
    "Actor",
    "ActorRef",
    "LocalActorRef",
    "RemoteActorRef",
    "AskFuture",
    "AskRejected",
    "Manager",
    "TransportConfig",
    "EndReport",
    "SendError",
    "FieldLimitError",
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
    "TopicFeed",
    "TopicSubscribe",
    "TopicCredit",
    "TopicUnsubscribe",
    "RegistryError",
    "NameTaken",
    "NotFound",
    "Offline",
]

__version__ = "0.1.0"
